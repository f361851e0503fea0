/**
 * Errors across a thread boundary. Structured cloning keeps an Error's message
 * but not its class, so a NotFound thrown in a worker would reach the gRPC
 * handler as a plain Error and turn into INTERNAL. Errors travel as their
 * code, message, name and stack instead, and are rebuilt as the same
 * GentuneError subclass on the other side (ERROR_KINDS, src/common/errors.ts:
 * the one table of error kinds, which the gRPC status mapping reads too).
 */
import { ERROR_KINDS, GentuneError, type ErrorCode } from '../../common/errors.js';

/** An error as it crosses threads. */
export interface WireError {
  /** Set for GentuneErrors (domain errors, safe to show to clients). */
  code?: ErrorCode;
  message: string;
  name: string;
  /** The stack where it was thrown, for the log. */
  stack?: string;
}

/** Anything thrown (or an abort reason) -> its wire form. */
export function toWireError(err: unknown): WireError {
  if (err instanceof GentuneError) return { code: err.code, message: err.message, name: err.name, stack: err.stack };
  if (err instanceof Error || err instanceof DOMException) return { message: err.message, name: err.name, stack: err.stack };
  return { message: String(err), name: 'Error' };
}

/**
 * The wire form -> an error of the same kind: the GentuneError subclass of
 * its code, a DOMException for an AbortError (a plain `controller.abort()`),
 * else an Error with the original name and the remote stack.
 */
export function fromWireError(wire: WireError): Error {
  let err: Error;
  if (wire.code !== undefined) {
    // A code this side has no row for (a newer peer) keeps its code on the base class.
    const kind = Object.hasOwn(ERROR_KINDS, wire.code) ? ERROR_KINDS[wire.code] : undefined;
    err = kind ? new kind.errorClass(wire.message) : new GentuneError(wire.code, wire.message);
  } else if (wire.name === 'AbortError' || wire.name === 'TimeoutError') {
    err = new DOMException(wire.message, wire.name);
  } else {
    err = new Error(wire.message);
    err.name = wire.name;
  }
  if (wire.stack !== undefined && !(err instanceof DOMException)) err.stack = wire.stack;
  return err;
}
