/**
 * Domain errors. Every layer below src/server throws these; exactly one function
 * in src/server maps `code` to a gRPC status. Anything else thrown is INTERNAL.
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
