/**
 * Adapters from grpc-js call objects to plain async handler bodies:
 *
 *   unary(deps, 'GetServerInfo', async (req, ctx) => res)
 *   serverStream(deps, 'Generate', async function* (req, ctx) { yield res })
 *   clientStream(deps, 'UploadDataset', async (reqs, ctx) => res)
 *
 * Each wrapper admits the call (bearer token missing or wrong ->
 * UNAUTHENTICATED, role too low -> PERMISSION_DENIED, draining -> UNAVAILABLE,
 * engine not ready -> UNAVAILABLE, too many streams -> RESOURCE_EXHAUSTED), gives the body an
 * AbortSignal that fires when the client cancels, the deadline passes or the
 * shutdown grace runs out, maps thrown errors through toGrpcStatus, and logs
 * one line per call.
 */
import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import {
  Metadata,
  type handleClientStreamingCall,
  type handleServerStreamingCall,
  type handleUnaryCall,
  type ServerReadableStream,
  type ServerUnaryCall,
  type ServerWritableStream,
  status as Code,
} from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { Cancelled, DeadlineExceeded, ResourceExhausted, Unavailable } from '../common/errors.js';
import type { GentuneConfig } from '../engine/config.js';
import { limitLabel } from '../engine/limit-label.js';
import type { Engine } from '../engine/engine-api.js';
import type { RpcMetrics } from '../observability/rpc-metrics.js';
import type { Authorizer, Principal } from './auth.js';
import type { CallTracker } from './call-tracker.js';
import { toGrpcStatus, type GrpcStatus } from './status.js';
import { checkDecoded, decodedStream } from './undecodable.js';

/** What every handler needs. */
export interface RpcDeps {
  engine: Engine;
  config: GentuneConfig;
  log: Logger;
  tracker: CallTracker;
  /** Counts and times every call (src/observability); optional. */
  metrics?: RpcMetrics;
  /** Bearer-token access control (auth.ts); absent = every call allowed. */
  auth?: Authorizer;
}

/** Per-call context handed to handler bodies. */
export interface CallContext {
  /** From the `x-request-id` header when valid, else a fresh UUID; echoed back in the response headers. */
  requestId: string;
  /** Aborted when the client cancels, the deadline passes or shutdown cancels calls; `reason` is a GentuneError. */
  signal: AbortSignal;
  /** Child logger carrying method and request id. */
  log: Logger;
}

/** Options of a wrapper. */
export interface RpcOptions {
  /** Refuse with UNAVAILABLE until engine.isReady(). Default true. */
  requiresReady?: boolean;
}

/** What every grpc-js server call has (grpc-js does not export ServerSurfaceCall). */
interface AnyCall {
  readonly cancelled: boolean;
  readonly metadata: Metadata;
  getPeer(): string;
  getDeadline(): ReturnType<ServerUnaryCall<unknown, unknown>['getDeadline']>;
  sendMetadata(md: Metadata): void;
  on(event: 'cancelled', listener: () => void): unknown;
  removeListener(event: 'cancelled', listener: () => void): unknown;
}

interface OpenCall {
  ctx: CallContext;
  /** True once the client is gone (cancelled or deadline passed): nothing can be sent. */
  gone(): boolean;
  /** Aborted when the client is gone (not on shutdown). */
  goneSignal: AbortSignal;
  /** Logs the outcome and unregisters the call. */
  close(code: Code): void;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Admits a call or throws why not; returns the caller when auth is on. */
function admit(deps: RpcDeps, method: string, call: AnyCall, streaming: boolean, options: RpcOptions): Principal | undefined {
  // Auth first: a caller without a valid token learns nothing of the server's state.
  const caller = deps.auth?.authorize(method, call.metadata);
  if (deps.tracker.draining) throw new Unavailable('server is shutting down');
  if ((options.requiresReady ?? true) && !deps.engine.isReady()) {
    throw new Unavailable('server is not ready: the base model is loading');
  }
  const limit = deps.config.limits.maxConcurrentStreams;
  if (streaming && deps.tracker.streams >= limit) {
    throw new ResourceExhausted(`too many concurrent streams: at most ${limitLabel('maxConcurrentStreams', limit)}`);
  }
  return caller;
}

function open(deps: RpcDeps, method: string, call: AnyCall, streaming: boolean, caller: Principal | undefined): OpenCall {
  const header = call.metadata.get('x-request-id')[0];
  const requestId = typeof header === 'string' && REQUEST_ID.test(header) ? header : randomUUID();
  const log = deps.log.child(caller ? { method, requestId, caller: caller.name } : { method, requestId });
  const controller = new AbortController();
  const goneController = new AbortController();
  const started = performance.now();
  const deadlineMs = Number(call.getDeadline());
  const abortForDeadline = () => {
    goneController.abort();
    controller.abort(new DeadlineExceeded('deadline exceeded'));
  };
  // grpc-js ends the call at the deadline; this timer makes sure the engine
  // hears of it too (setTimeout cannot wait longer than 2^31-1 ms: 24.8 days).
  const untilDeadline = deadlineMs - Date.now();
  const timer = untilDeadline < MAX_TIMER_MS ? setTimeout(abortForDeadline, Math.max(0, untilDeadline)) : undefined;
  // The client's own deadline timer fires first and cancels the stream (grpc
  // gives the server no way to tell the two apart), so a cancellation close to
  // the deadline counts as the deadline: within 25% of the timeout, 50..1000
  // ms. The server's clock starts late: the client sends its timeout as it was
  // when the call was created, and the request may sit in queues before that.
  const slackMs = Math.min(1000, Math.max(50, 0.25 * untilDeadline));
  const onCancelled = () => {
    goneController.abort();
    if (Number.isFinite(deadlineMs) && Date.now() >= deadlineMs - slackMs) abortForDeadline();
    else controller.abort(new Cancelled('the client cancelled the call'));
  };
  call.on('cancelled', onCancelled);
  if (call.cancelled) onCancelled(); // gone before we listened
  const release = deps.tracker.add(controller, streaming);
  const md = new Metadata();
  md.set('x-request-id', requestId);
  call.sendMetadata(md);
  return {
    ctx: { requestId, signal: controller.signal, log },
    gone: () => goneController.signal.aborted || call.cancelled,
    goneSignal: goneController.signal,
    close(code) {
      clearTimeout(timer);
      call.removeListener('cancelled', onCancelled);
      release();
      const ms = Math.round(performance.now() - started);
      log.info({ code: Code[code], ms }, 'call finished');
      deps.metrics?.onCall(method, Code[code], (performance.now() - started) / 1000);
    },
  };
}

/** The status of a call refused at admission (counted, with no duration to speak of; auth refusals logged with the peer, never the token). */
function refused(deps: RpcDeps, method: string, call: AnyCall, err: unknown): GrpcStatus {
  const s = toGrpcStatus(err, deps.log);
  if (s.code === Code.UNAUTHENTICATED || s.code === Code.PERMISSION_DENIED) {
    deps.log.warn({ method, code: Code[s.code], peer: call.getPeer(), reason: s.details }, 'call refused');
  }
  deps.metrics?.onCall(method, Code[s.code], 0);
  return s;
}

/** The status for a failure: the abort reason when the signal fired, else the error itself. */
function failure(err: unknown, ctx: CallContext): GrpcStatus {
  return toGrpcStatus(ctx.signal.aborted ? ctx.signal.reason : err, ctx.log);
}

/** Wraps a unary body. */
export function unary<Req, Res>(
  deps: RpcDeps,
  method: string,
  body: (req: Req, ctx: CallContext) => Promise<Res>,
  options: RpcOptions = {},
): handleUnaryCall<Req, Res> {
  return (call, callback) => {
    let caller: Principal | undefined;
    try {
      caller = admit(deps, method, call, false, options);
    } catch (err) {
      callback(refused(deps, method, call, err));
      return;
    }
    const c = open(deps, method, call, false, caller);
    // An async wrapper, so that a request that did not decode fails like the body would.
    (async () => body(checkDecoded(method, call.request), c.ctx))().then(
      (res) => {
        c.close(Code.OK);
        if (!c.gone()) callback(null, res);
      },
      (err: unknown) => {
        const s = failure(err, c.ctx);
        c.close(s.code);
        if (!c.gone()) callback(s);
      },
    );
  };
}

/** Writes one message, waiting for the transport to drain when its buffer is full. */
async function write<Res>(call: ServerWritableStream<unknown, Res>, message: Res, signal: AbortSignal): Promise<void> {
  if (!call.write(message)) await once(call, 'drain', { signal });
}

/**
 * Wraps a server-streaming body (an async generator). Stops pulling from it as
 * soon as the client is gone, which runs the generator's `finally` blocks.
 */
export function serverStream<Req, Res>(
  deps: RpcDeps,
  method: string,
  body: (req: Req, ctx: CallContext) => AsyncIterable<Res>,
  options: RpcOptions = {},
): handleServerStreamingCall<Req, Res> {
  return (call) => {
    let caller: Principal | undefined;
    try {
      caller = admit(deps, method, call, true, options);
    } catch (err) {
      call.emit('error', refused(deps, method, call, err));
      return;
    }
    const c = open(deps, method, call, true, caller);
    void (async () => {
      let code = Code.OK;
      try {
        for await (const message of body(checkDecoded(method, call.request), c.ctx)) {
          if (c.gone()) break;
          // Only the client leaving stops the writes: after a shutdown abort the
          // body may still send its last message (finish_reason CANCELLED).
          await write(call, message, c.goneSignal);
        }
        if (c.gone()) code = Code.CANCELLED;
        else call.end();
      } catch (err) {
        const s = failure(err, c.ctx);
        code = s.code;
        if (!c.gone()) call.emit('error', s);
      } finally {
        c.close(code);
      }
    })();
  };
}

/** Wraps a client-streaming body; `requests` ends when the client half-closes. */
export function clientStream<Req, Res>(
  deps: RpcDeps,
  method: string,
  body: (requests: AsyncIterable<Req>, ctx: CallContext) => Promise<Res>,
  options: RpcOptions = {},
): handleClientStreamingCall<Req, Res> {
  return (call: ServerReadableStream<Req, Res>, callback) => {
    let caller: Principal | undefined;
    try {
      caller = admit(deps, method, call, false, options);
    } catch (err) {
      callback(refused(deps, method, call, err));
      return;
    }
    const c = open(deps, method, call, false, caller);
    body(decodedStream(method, call as AsyncIterable<Req>), c.ctx).then(
      (res) => {
        c.close(Code.OK);
        if (!c.gone()) callback(null, res);
      },
      (err: unknown) => {
        const s = failure(err, c.ctx);
        c.close(s.code);
        if (!c.gone()) callback(s);
      },
    );
  };
}
