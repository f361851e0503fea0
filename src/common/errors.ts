/**
 * Domain errors. Every layer below src/server throws these. {@link ERROR_KINDS}
 * is the one table of them: the class of each code (wire-error.ts rebuilds
 * errors from it after a thread boundary) and its gRPC status (status.ts);
 * {@link clientMessage} is the one rule for what a client may read of
 * anything thrown. Anything else thrown is INTERNAL.
 */
export type ErrorCode =
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'FAILED_PRECONDITION'
  | 'RESOURCE_EXHAUSTED'
  | 'UNAVAILABLE'
  | 'CANCELLED'
  | 'DEADLINE_EXCEEDED'
  | 'PERMISSION_DENIED'
  | 'UNAUTHENTICATED';

/** An error whose message is safe to show to a client; `cause` goes to the log only. */
export class GentuneError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'GentuneError';
  }
}

/** A request or file is malformed; the message names the field and the value. */
export class InvalidArgument extends GentuneError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('INVALID_ARGUMENT', message, options);
  }
}

export class NotFound extends GentuneError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('NOT_FOUND', message, options);
  }
}

export class AlreadyExists extends GentuneError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ALREADY_EXISTS', message, options);
  }
}

export class FailedPrecondition extends GentuneError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('FAILED_PRECONDITION', message, options);
  }
}

export class ResourceExhausted extends GentuneError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('RESOURCE_EXHAUSTED', message, options);
  }
}

export class Unavailable extends GentuneError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('UNAVAILABLE', message, options);
  }
}

export class Cancelled extends GentuneError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CANCELLED', message, options);
  }
}

export class DeadlineExceeded extends GentuneError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('DEADLINE_EXCEEDED', message, options);
  }
}

/** The caller is known but its role does not allow the call (src/server/auth.ts). */
export class PermissionDenied extends GentuneError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PERMISSION_DENIED', message, options);
  }
}

/** The call carries no valid credentials (missing or unknown bearer token). */
export class Unauthenticated extends GentuneError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('UNAUTHENTICATED', message, options);
  }
}

/** A GentuneError subclass, as {@link ERROR_KINDS} holds it. */
export type ErrorClass = new (message: string, options?: { cause?: unknown }) => GentuneError;

/** What one error kind is: its class, and the gRPC status it becomes. */
export interface ErrorKind {
  errorClass: ErrorClass;
  /**
   * The gRPC status code (the numbers of grpc's doc/statuscodes.md, which
   * every gRPC library shares; ErrorCode is its name there). A number, not
   * grpc-js's enum, so that nothing below src/server imports grpc-js;
   * tests/unit/server/status.test.ts checks each against grpc-js.
   */
  grpcCode: number;
}

/** Every error kind: a Record over ErrorCode, so a new code does not compile without its row. */
export const ERROR_KINDS: Readonly<Record<ErrorCode, ErrorKind>> = {
  CANCELLED: { errorClass: Cancelled, grpcCode: 1 },
  INVALID_ARGUMENT: { errorClass: InvalidArgument, grpcCode: 3 },
  DEADLINE_EXCEEDED: { errorClass: DeadlineExceeded, grpcCode: 4 },
  NOT_FOUND: { errorClass: NotFound, grpcCode: 5 },
  ALREADY_EXISTS: { errorClass: AlreadyExists, grpcCode: 6 },
  PERMISSION_DENIED: { errorClass: PermissionDenied, grpcCode: 7 },
  RESOURCE_EXHAUSTED: { errorClass: ResourceExhausted, grpcCode: 8 },
  FAILED_PRECONDITION: { errorClass: FailedPrecondition, grpcCode: 9 },
  UNAVAILABLE: { errorClass: Unavailable, grpcCode: 14 },
  UNAUTHENTICATED: { errorClass: Unauthenticated, grpcCode: 16 },
};

/** `err` when it is a domain error of a kind {@link ERROR_KINDS} has; undefined for anything else (a bug, a library's error). */
export function domainError(err: unknown): GentuneError | undefined {
  return err instanceof GentuneError && Object.hasOwn(ERROR_KINDS, err.code) ? err : undefined;
}

/** Said in place of the message of an error that is not a domain error: its cause goes to the log only. */
export const INTERNAL_MESSAGE = 'internal error';

/**
 * What a client may read of anything thrown: a domain error's message
 * (written for clients: it names the field and the value), else
 * {@link INTERNAL_MESSAGE}. The gRPC status, the HTTP error body and a failed
 * fine-tune job's reason all say this.
 */
export function clientMessage(err: unknown): string {
  return domainError(err)?.message ?? INTERNAL_MESSAGE;
}
