/**
 * The ONE place where errors become gRPC statuses, by the table of
 * src/common/errors.ts (ERROR_KINDS). Domain errors keep their message (it is
 * written for clients: it names the field and the value); anything else
 * becomes INTERNAL "internal error" and its cause goes to the log only, never
 * to the client.
 */
import { status as Code } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { domainError, ERROR_KINDS, INTERNAL_MESSAGE } from '../common/errors.js';

/** A status ready for grpc-js (`callback(status)` or `call.emit('error', status)`). */
export interface GrpcStatus {
  code: Code;
  details: string;
}

/**
 * Maps anything thrown to a gRPC status. An `AbortError` (what an aborted
 * AbortSignal makes fetch-style APIs throw) is CANCELLED.
 * @param log receives unknown errors with their cause and stack.
 */
export function toGrpcStatus(err: unknown, log?: Pick<Logger, 'error'>): GrpcStatus {
  const known = domainError(err);
  if (known) return { code: ERROR_KINDS[known.code].grpcCode, details: known.message };
  if (err instanceof Error && err.name === 'AbortError') {
    return { code: Code.CANCELLED, details: 'cancelled' };
  }
  log?.error({ err }, 'internal error');
  return { code: Code.INTERNAL, details: INTERNAL_MESSAGE };
}
