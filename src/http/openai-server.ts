/**
 * The OpenAI-compatible HTTP API: a second front door onto the same engine
 * as the gRPC server, on its own port (--http-port), with the same bearer
 * tokens and roles, the same TLS files, the same limits and one shared
 * CallTracker (so --max-concurrent-streams and draining cover both doors).
 *
 * Built on fastify: schema-free routes whose bodies are checked with zod
 * (zod-request.ts) so that every message names the field like the gRPC
 * side's; fastify gives body limits, keep-alive, HTTPS and a router without
 * our own code, and its hijack() hands SSE streams the raw response.
 */
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import type { AddressInfo } from 'node:net';
import { InvalidArgument, Unavailable } from '../common/errors.js';
import type { GentuneConfig } from '../engine/config.js';
import type { Engine } from '../engine/engine-api.js';
import { limitLabel } from '../engine/limit-label.js';
import type { RpcMetrics } from '../observability/rpc-metrics.js';
import type { Authorizer } from '../server/auth.js';
import type { CallTracker } from '../server/call-tracker.js';
import { exposureWarnings } from '../server/exposure.js';
import { readTlsFiles, transportSecurity } from '../server/tls-files.js';
import type { Logger } from 'pino';
import type { HttpDeps } from './http-call.js';
import { PayloadTooLarge, toHttpError } from './http-error.js';
import { strictJsonBody } from './json-body.js';
import { chatCompletionsRoutes } from './chat-completions-routes.js';
import { completionsRoutes } from './completions-routes.js';
import { filesRoutes } from './files-routes.js';
import { fineTuningRoutes } from './fine-tuning-routes.js';
import { modelsRoutes } from './models-routes.js';

/** A module of routes; each registers its paths on `app`. */
export type RouteModule = (app: FastifyInstance, deps: HttpDeps) => void | Promise<void>;

/** Every route module of the API. */
const ROUTES: RouteModule[] = [modelsRoutes, completionsRoutes, chatCompletionsRoutes, filesRoutes, fineTuningRoutes];

/** After the grace period, how long cancelled calls get to send their last event and close, in milliseconds. */
const CANCEL_FLUSH_MS = 500;

export interface StartOpenAiServerOptions {
  log: Logger;
  /** Shared with the gRPC server (src/server/server.ts). */
  tracker: CallTracker;
  /** Shared with the gRPC server; absent = auth off. */
  auth?: Authorizer;
  metrics?: RpcMetrics;
  /** Port to bind; 0 picks a free one. Default config.httpPort (whose 0 means off: serve() does not call this then). */
  port?: number;
}

/** A running API server. */
export interface RunningOpenAiServer {
  /** The bound port. */
  port: number;
  /** "http://host:port" or "https://host:port". */
  url: string;
  /**
   * Stops accepting connections, lets calls in flight finish for up to
   * `graceMs` milliseconds, then cancels the rest (streams end with their
   * last event) and closes every connection. Idempotent.
   */
  shutdown(graceMs?: number): Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

/** Errors fastify raises before a route body runs (body parsing and limits), in the API's terms. */
function requestError(err: FastifyError, config: GentuneConfig): Error {
  if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return new PayloadTooLarge(`request body is larger than ${limitLabel('maxMessageBytes', config.limits.maxMessageBytes)} bytes`);
  }
  if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return new InvalidArgument('request body must be application/json (or multipart/form-data for POST /v1/files)');
  if (err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') return new InvalidArgument('request body is empty: send a JSON object');
  if (err.statusCode === 400 || err.code === 'FST_ERR_CTP_INVALID_JSON_BODY') return new InvalidArgument(`request body is not valid JSON: ${err.message}`);
  return err;
}

/** Starts the API server; resolves once it listens. */
export async function startOpenAiServer(engine: Engine, config: GentuneConfig, options: StartOpenAiServerOptions): Promise<RunningOpenAiServer> {
  const { log, tracker } = options;
  const tls = readTlsFiles(config.security);
  const transport = transportSecurity(config.security);
  for (const warning of exposureWarnings(config.host, options.auth !== undefined, transport, 'the OpenAI HTTP API')) {
    log.warn(warning);
    process.stderr.write(`\n*** WARNING: ${warning}\n\n`);
  }
  const https = tls === null ? null : { cert: tls.cert, key: tls.key, ...(tls.clientCa ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true } : {}) };
  // One fastify type for both: the routes never touch the raw server.
  // keepAliveTimeout: --idle-connection-ms closes a keep-alive connection between requests (fastify's default is 72 s).
  const app = Fastify({ logger: false, bodyLimit: config.limits.maxMessageBytes, https, return503OnClosing: false, keepAliveTimeout: config.idleConnectionMs }) as unknown as FastifyInstance;
  const deps: HttpDeps = { engine, config, log, tracker, metrics: options.metrics, auth: options.auth };
  strictJsonBody(app);

  app.setErrorHandler((err: FastifyError, request, reply) => {
    const e = toHttpError(requestError(err, config), log);
    log.info({ method: request.method, path: request.url.split('?')[0], status: e.status, code: e.codeName }, 'request refused');
    options.metrics?.onCall('request', e.codeName, 0, 'openai');
    void reply.code(e.status).send(e.body);
  });
  app.setNotFoundHandler((request, reply) => {
    const e = toHttpError(new InvalidArgument(`no such endpoint: ${request.method} ${request.url.split('?')[0]} (gentune serves /v1/models, /v1/completions, /v1/chat/completions, /v1/files and /v1/fine_tuning/jobs)`));
    void reply.code(404).send({ error: { ...e.body.error, code: 'not_found' } });
  });
  for (const register of ROUTES) await register(app, deps);

  const port = options.port ?? config.httpPort;
  await app.listen({ host: config.host, port });
  const bound = (app.server.address() as AddressInfo).port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const url = `${tls ? 'https' : 'http'}://${host}:${bound}`;
  log.info({ address: `${host}:${bound}`, url, transport, tokens: options.auth ? options.auth.counts() : 'off' }, 'OpenAI HTTP API listening');

  let closing: Promise<void> | undefined;
  const shutdown = (graceMs = config.graceMs): Promise<void> => {
    closing ??= (async () => {
      tracker.draining = true;
      // Stop accepting connections; idle keep-alive ones close now, busy ones when their call ends.
      const closed = app.close();
      if (!(await Promise.race([tracker.idle().then(() => true), sleep(graceMs).then(() => false)]))) {
        log.warn({ calls: tracker.size }, 'grace period over: cancelling HTTP calls');
        tracker.abortAll(new Unavailable('server is shutting down'));
        await Promise.race([tracker.idle(), sleep(CANCEL_FLUSH_MS)]);
      }
      app.server.closeAllConnections();
      await closed;
      log.info('OpenAI HTTP API stopped');
    })();
    return closing;
  };
  return { port: bound, url, shutdown };
}
