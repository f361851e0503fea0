/**
 * The ONE place where errors become gRPC statuses. Domain errors keep their
 * message (it is written for clients: it names the field and the value);
 * anything else becomes INTERNAL "internal error" and its cause goes to the log
 * only, never to the client.
 */
import { status as Code } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { GentuneError, type ErrorCode } from '../common/errors.js';

/** A status ready for grpc-js (`callback(status)` or `call.emit('error', status)`). */
export interface GrpcStatus {
  code: Code;
  details: string;
}

const CODES: Record<ErrorCode, Code> = {
  INVALID_ARGUMENT: Code.INVALID_ARGUMENT,
  NOT_FOUND: Code.NOT_FOUND,
  ALREADY_EXISTS: Code.ALREADY_EXISTS,
  FAILED_PRECONDITION: Code.FAILED_PRECONDITION,
  RESOURCE_EXHAUSTED: Code.RESOURCE_EXHAUSTED,
  UNAVAILABLE: Code.UNAVAILABLE,
  CANCELLED: Code.CANCELLED,
  DEADLINE_EXCEEDED: Code.DEADLINE_EXCEEDED,
  PERMISSION_DENIED: Code.PERMISSION_DENIED,
  UNAUTHENTICATED: Code.UNAUTHENTICATED,
};

/**
 * Maps anything thrown to a gRPC status. An `AbortError` (what an aborted
 * AbortSignal makes fetch-style APIs throw) is CANCELLED.
 * @param log receives unknown errors with their cause and stack.
 */
export function toGrpcStatus(err: unknown, log?: Pick<Logger, 'error'>): GrpcStatus {
  if (err instanceof GentuneError) {
    const code = CODES[err.code];
    if (code !== undefined) return { code, details: err.message };
  }
  if (err instanceof Error && err.name === 'AbortError') {
    return { code: Code.CANCELLED, details: 'cancelled' };
  }
  log?.error({ err }, 'internal error');
  return { code: Code.INTERNAL, details: 'internal error' };
}
