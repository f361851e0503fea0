/**
 * Route bodies of the OpenAI HTTP API as plain async functions, the HTTP twin
 * of src/server/rpc.ts:
 *
 *   route(deps, { operation: 'models.list', role: 'ListAdapters' }, async (req, ctx) => json)
 *   route(deps, { operation: 'files.content', role: 'ListDatasets' }, async (req, ctx) => new RawReply(type, bytes))
 *   route(deps, { operation: 'chat.completions', role: 'Generate', streaming: true }, async (req, ctx) => sse(events))
 *
 * Each call is admitted in the same order and under the same limits as a gRPC
 * call, through the same CallTracker and Authorizer (bearer token missing or
 * wrong -> 401, role too low -> 403, draining -> 503, engine not ready -> 503,
 * too many streams -> 429; --max-concurrent-streams counts both front doors
 * together). The body gets an AbortSignal that fires when the client
 * disconnects or the shutdown grace runs out; errors go through http-error.ts;
 * every request is counted (api="openai") and logged in one access-log line.
 */
import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest, RouteHandlerMethod } from 'fastify';
import type { Logger } from 'pino';
import { Cancelled, ResourceExhausted, Unavailable } from '../common/errors.js';
import type { GentuneConfig } from '../engine/config.js';
import type { Engine } from '../engine/engine-api.js';
import { limitLabel } from '../engine/limit-label.js';
import type { RpcMetrics } from '../observability/rpc-metrics.js';
import type { Authorizer, Principal } from '../server/auth.js';
import type { ModelServiceMethod } from '../server/auth-roles.js';
import type { CallTracker } from '../server/call-tracker.js';
import { toHttpError } from './http-error.js';

/** What every route needs: the gRPC server's dependencies, shared with it. */
export interface HttpDeps {
  engine: Engine;
  config: GentuneConfig;
  log: Logger;
  /** Shared with the gRPC server: one stream limit and one drain for both front doors. */
  tracker: CallTracker;
  metrics?: RpcMetrics;
  /** Absent = auth off (every call allowed). */
  auth?: Authorizer;
}

/** Per-request context handed to route bodies. */
export interface HttpCallContext {
  /** From the `x-request-id` header when valid, else a fresh UUID; echoed in the response headers. */
  requestId: string;
  /** Aborted when the client disconnects or shutdown cancels calls; `reason` is a GentuneError. */
  signal: AbortSignal;
  /** Child logger carrying the operation and request id. */
  log: Logger;
  /** The caller, when auth is on. */
  caller?: Principal;
}

/** How a route is admitted and counted. */
export interface RouteSpec {
  /** Name in metrics and logs, after the OpenAI SDK's resource ("chat.completions", "files.create"). */
  operation: string;
  /** The ModelService RPC whose role the route needs (auth-roles.ts is the one table). */
  role: ModelServiceMethod;
  /** Counts against --max-concurrent-streams (generation routes, streamed or not). Default false. */
  streaming?: boolean;
  /** Refuse with 503 until the engine is ready. Default true. */
  requiresReady?: boolean;
}

/** A response streamed as server-sent events: `data: <json>` per item, then `data: [DONE]`. */
export class SseReply {
  constructor(readonly events: AsyncIterable<unknown>) {}
}

/** A response that is not JSON (a file's content). */
export class RawReply {
  constructor(
    readonly contentType: string,
    readonly body: string | Buffer,
  ) {}
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;


function admit(deps: HttpDeps, spec: RouteSpec, request: FastifyRequest): Principal | undefined {
  // Auth first: a caller without a valid token learns nothing of the server's state.
  // headersDistinct: `headers.authorization` keeps only the first of several (issue 18), and every one must be seen.
  const caller = deps.auth?.authorizeBearer(spec.role, request.raw.headersDistinct.authorization ?? [], 'header');
  if (deps.tracker.draining) throw new Unavailable('server is shutting down');
  if ((spec.requiresReady ?? true) && !deps.engine.isReady()) {
    throw new Unavailable('server is not ready: the base model is loading');
  }
  const limit = deps.config.limits.maxConcurrentStreams;
  if (spec.streaming === true && deps.tracker.streams >= limit) {
    throw new ResourceExhausted(`too many concurrent streams: at most ${limitLabel('maxConcurrentStreams', limit)}`);
  }
  return caller;
}

async function write(reply: FastifyReply, text: string, gone: AbortSignal): Promise<void> {
  if (!reply.raw.write(text)) await once(reply.raw, 'drain', { signal: gone });
}

/** Streams `events` as SSE; an error after the headers went out becomes a last `data: {"error": ...}` event, as OpenAI does. */
async function streamSse(reply: FastifyReply, result: SseReply, requestId: string, gone: AbortSignal, ctx: HttpCallContext): Promise<string> {
  reply.hijack();
  reply.raw.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-request-id': requestId,
  });
  let code = 'OK';
  try {
    for await (const event of result.events) {
      if (gone.aborted) break;
      await write(reply, `data: ${JSON.stringify(event)}\n\n`, gone);
    }
    if (!gone.aborted) await write(reply, 'data: [DONE]\n\n', gone);
  } catch (err) {
    const e = toHttpError(ctx.signal.aborted ? ctx.signal.reason : err, ctx.log);
    code = e.codeName;
    if (!gone.aborted) await write(reply, `data: ${JSON.stringify(e.body)}\n\n`, gone).catch(() => undefined);
  }
  if (gone.aborted) code = 'CANCELLED';
  reply.raw.end();
  return code;
}

/** Wraps a route body (see the file comment). */
export function route<Req extends FastifyRequest = FastifyRequest>(
  deps: HttpDeps,
  spec: RouteSpec,
  /** Returns a JSON value (sent with status 200), an SseReply or a RawReply. */
  body: (request: Req, ctx: HttpCallContext) => Promise<unknown>,
): RouteHandlerMethod {
  return async function handler(request, reply) {
    const started = performance.now();
    const header = request.headers['x-request-id'];
    const requestId = typeof header === 'string' && REQUEST_ID.test(header) ? header : randomUUID();
    let log = deps.log.child({ operation: spec.operation, requestId });
    const finish = (status: number, codeName: string) => {
      const ms = Math.round(performance.now() - started);
      log.info({ method: request.method, path: request.url.split('?')[0], status, code: codeName, ms }, 'request finished');
      deps.metrics?.onCall(spec.operation, codeName, (performance.now() - started) / 1000, 'openai');
    };
    let caller: Principal | undefined;
    try {
      caller = admit(deps, spec, request);
    } catch (err) {
      const e = toHttpError(err, log);
      if (e.status === 401 || e.status === 403) log.warn({ peer: request.ip, reason: e.body.error.message }, 'call refused');
      finish(e.status, e.codeName);
      return reply.code(e.status).header('x-request-id', requestId).send(e.body);
    }
    if (caller) log = log.child({ caller: caller.name });
    const controller = new AbortController();
    const gone = new AbortController();
    // 'close' on the response before it finished: the client went away.
    const onClose = () => {
      if (reply.raw.writableFinished) return;
      gone.abort();
      controller.abort(new Cancelled('the client disconnected'));
    };
    reply.raw.on('close', onClose);
    const release = deps.tracker.add(controller, spec.streaming === true);
    const ctx: HttpCallContext = { requestId, signal: controller.signal, log, caller };
    try {
      const result = await body(request as Req, ctx);
      if (result instanceof SseReply) {
        finish(200, await streamSse(reply, result, requestId, gone.signal, ctx));
        return reply;
      }
      if (gone.signal.aborted) {
        finish(499, 'CANCELLED');
        return reply;
      }
      reply.header('x-request-id', requestId);
      if (result instanceof RawReply) {
        finish(200, 'OK');
        return reply.code(200).type(result.contentType).send(result.body);
      }
      finish(200, 'OK');
      return reply.code(200).send(result);
    } catch (err) {
      const e = toHttpError(controller.signal.aborted ? controller.signal.reason : err, log);
      finish(e.status, e.codeName);
      if (gone.signal.aborted || reply.sent) return reply;
      return reply.code(e.status).header('x-request-id', requestId).send(e.body);
    } finally {
      reply.raw.removeListener('close', onClose);
      release();
    }
  };
}
