/**
 * The ONE place where errors become HTTP responses of the OpenAI API: an
 * OpenAI-shaped body `{ error: { message, type, param, code } }` with the
 * status the OpenAI SDKs map to their exception classes (400
 * BadRequestError, 401 AuthenticationError, 403 PermissionDeniedError, 404
 * NotFoundError, 409 ConflictError, 413, 429 RateLimitError, 503). Domain
 * errors keep their message (written for clients: it names the field and the
 * value); anything else is 500 "internal error" and its cause goes to the log
 * only, like status.ts does for gRPC.
 */
import type { Logger } from 'pino';
import { domainError, INTERNAL_MESSAGE, type ErrorCode } from '../common/errors.js';

/** The body of an error response, as OpenAI sends it. */
export interface OpenAiErrorBody {
  error: {
    message: string;
    /** OpenAI's class of error: "invalid_request_error", "authentication_error", ... */
    type: string;
    /** The request field at fault ("temperature", "messages[0].role"), or null. */
    param: string | null;
    /** The domain code in lower case ("invalid_argument", "resource_exhausted"), or a specific one ("payload_too_large"). */
    code: string | null;
  };
}

/** An HTTP status with its OpenAI body, and the gRPC code name the call is counted under. */
export interface HttpError {
  status: number;
  body: OpenAiErrorBody;
  /** gRPC status name for metrics and logs ("INVALID_ARGUMENT"), the same names the gRPC side reports. */
  codeName: string;
}

/**
 * The request is larger than a server limit (the body limit --max-message-bytes,
 * or a file over --max-upload-bytes): 413. A transport error, not a domain
 * one: the gRPC side gets RESOURCE_EXHAUSTED from grpc-js for the same thing.
 */
export class PayloadTooLarge extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PayloadTooLarge';
  }
}

const STATUS: Record<ErrorCode, { status: number; type: string }> = {
  INVALID_ARGUMENT: { status: 400, type: 'invalid_request_error' },
  UNAUTHENTICATED: { status: 401, type: 'authentication_error' },
  PERMISSION_DENIED: { status: 403, type: 'permission_error' },
  NOT_FOUND: { status: 404, type: 'invalid_request_error' },
  ALREADY_EXISTS: { status: 409, type: 'invalid_request_error' },
  FAILED_PRECONDITION: { status: 409, type: 'invalid_request_error' },
  RESOURCE_EXHAUSTED: { status: 429, type: 'rate_limit_error' },
  UNAVAILABLE: { status: 503, type: 'server_error' },
  // 499 is nginx's "client closed request": nobody reads it, but the access log does.
  CANCELLED: { status: 499, type: 'server_error' },
  DEADLINE_EXCEEDED: { status: 504, type: 'server_error' },
};

/** The first `field` a validation message quotes ("`top_p` must be ..." -> "top_p"). */
function paramOf(message: string): string | null {
  const m = /^`([A-Za-z0-9_.[\]-]+)`/.exec(message);
  return m ? m[1]! : null;
}

function body(message: string, type: string, code: string | null, param: string | null): OpenAiErrorBody {
  return { error: { message, type, param, code } };
}

/**
 * Maps anything thrown to an HTTP error.
 * @param log receives unknown errors with their cause and stack.
 */
export function toHttpError(err: unknown, log?: Pick<Logger, 'error'>): HttpError {
  const known = domainError(err);
  if (known) {
    const s = STATUS[known.code];
    return { status: s.status, body: body(known.message, s.type, known.code.toLowerCase(), paramOf(known.message)), codeName: known.code };
  }
  if (err instanceof PayloadTooLarge) {
    return { status: 413, body: body(err.message, 'invalid_request_error', 'payload_too_large', null), codeName: 'RESOURCE_EXHAUSTED' };
  }
  if (err instanceof Error && err.name === 'AbortError') {
    return { status: 499, body: body('cancelled', 'server_error', 'cancelled', null), codeName: 'CANCELLED' };
  }
  log?.error({ err }, 'internal error');
  return { status: 500, body: body(INTERNAL_MESSAGE, 'server_error', 'internal', null), codeName: 'INTERNAL' };
}
