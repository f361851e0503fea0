/**
 * The gRPC server: ModelService handlers, grpc.health.v1 and reflection on one
 * grpc-js Server bound to host:port (port 0 picks a free one), in plaintext,
 * TLS or mutual TLS (tls.ts), with bearer-token auth of ModelService calls
 * when tokens are configured (auth.ts; health and reflection stay open).
 */
import { Server } from '@grpc/grpc-js';
import { pino, type Logger } from 'pino';
import { Unavailable } from '../common/errors.js';
import type { GentuneConfig } from '../engine/config.js';
import type { Engine } from '../engine/engine-api.js';
import { ModelServiceService, type ModelServiceServer } from '../gen/gentune/v1/service.js';
import type { RpcMetrics } from '../observability/rpc-metrics.js';
import { adapterHandlers } from './adapter-handler.js';
import { Authorizer } from './auth.js';
import { CallTracker } from './call-tracker.js';
import { datasetHandlers } from './dataset-handler.js';
import { evaluateHandler, evaluateStreamHandler } from './evaluate-handler.js';
import { exposureWarnings } from './exposure.js';
import { fineTuneHandlers } from './fine-tune-handler.js';
import { generateHandler } from './generate-handler.js';
import { ReadinessHealth } from './health.js';
import { addReflection } from './reflection.js';
import { keepRepeatedAuthorization } from './repeated-headers.js';
import type { RpcDeps } from './rpc.js';
import { serverInfoHandler } from './server-info-handler.js';
import { tolerantDecoding } from './undecodable.js';
import { serverCredentials, transportSecurity } from './tls.js';


/** After the grace period, how long cancelled calls get to send their last message and close, in milliseconds. */
const CANCEL_FLUSH_MS = 500;

export interface StartServerOptions {
  /** Defaults to a pino logger at config.logLevel. */
  log?: Logger;
  /** Per-call metrics (src/observability's GentuneMetrics.rpc). */
  metrics?: RpcMetrics;
  /** Shared with the OpenAI HTTP API (src/http), so that limits and draining cover both; default a fresh one. */
  tracker?: CallTracker;
  /** Shared with the OpenAI HTTP API; default read from config.security here. */
  auth?: Authorizer;
}

/** A running server. */
export interface RunningServer {
  /** The bound port (the real one when config.port was 0). */
  port: number;
  /**
   * Stops accepting calls (health turns NOT_SERVING, new calls get
   * UNAVAILABLE), lets calls in flight finish for up to `graceMs` milliseconds,
   * then cancels the rest (Generate ends with finish_reason CANCELLED, watch
   * streams with UNAVAILABLE) and closes every connection. Does not drain the
   * engine: the caller does that next. Idempotent.
   */
  shutdown(graceMs?: number): Promise<void>;
}

/** Builds the ModelService implementation. */
export function modelService(deps: RpcDeps): ModelServiceServer {
  return {
    generate: generateHandler(deps),
    ...fineTuneHandlers(deps),
    evaluate: evaluateHandler(deps),
    evaluateStream: evaluateStreamHandler(deps),
    ...datasetHandlers(deps),
    ...adapterHandlers(deps),
    getServerInfo: serverInfoHandler(deps),
  };
}

/** "::1" -> "[::1]" so that host:port parses. */
function hostPort(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

/** Starts the server; resolves once it listens. */
export async function startServer(
  engine: Engine,
  config: GentuneConfig,
  options: StartServerOptions = {},
): Promise<RunningServer> {
  const log = options.log ?? pino({ level: config.logLevel });
  // Both read their files now, so that a bad token file or certificate fails the start.
  const auth = options.auth ?? (await Authorizer.fromConfig(config.security));
  const credentials = serverCredentials(config.security);
  const transport = transportSecurity(config.security);
  for (const warning of exposureWarnings(config.host, auth.enabled, transport)) {
    log.warn(warning);
    process.stderr.write(`\n*** WARNING: ${warning}\n\n`);
  }
  const tracker = options.tracker ?? new CallTracker();
  const deps: RpcDeps = { engine, config, log, tracker, metrics: options.metrics, auth: auth.enabled ? auth : undefined };
  // --max-message-bytes: grpc-js refuses a larger message itself, with
  // RESOURCE_EXHAUSTED "Received message larger than max (<size> vs. <limit>)".
  const messageBytes = config.limits.maxMessageBytes;
  const server = new Server({
    'grpc.max_receive_message_length': messageBytes,
    'grpc.max_send_message_length': messageBytes,
    // --idle-connection-ms: a connection with no call in flight gets a GOAWAY;
    // grpc-js's default keeps it for ever (issue 18: 500 idle ones still open after 20 s).
    'grpc.max_connection_idle_ms': config.idleConnectionMs,
  });
  // Undecodable requests are the client's fault: INVALID_ARGUMENT, not grpc-js's INTERNAL;
  // invalid UTF-8 in a string field likewise, naming it (undecodable.ts).
  server.addService(tolerantDecoding(ModelServiceService, 'gentune.v1.ModelService'), modelService(deps));
  const health = new ReadinessHealth(engine);
  health.addToServer(server);
  addReflection(server);

  const address = hostPort(config.host, config.port);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, credentials, (err, bound) => (err ? reject(err) : resolve(bound))),
  );
  // Only now do grpc-js's HTTP/2 servers exist.
  keepRepeatedAuthorization(server);
  health.start();
  log.info({ address: hostPort(config.host, port), transport, tokens: auth.enabled ? auth.counts() : 'off' }, 'gRPC server listening');

  let closing: Promise<void> | undefined;
  const shutdown = (graceMs = config.graceMs): Promise<void> => {
    closing ??= (async () => {
      tracker.draining = true;
      health.stop();
      log.info({ graceMs, calls: tracker.size }, 'shutting down: waiting for calls in flight');
      // The listener and the connections stay open until the calls in flight
      // have ended, so that every new call meanwhile is refused at once with
      // UNAVAILABLE "server is shutting down" (rpc.ts admit). Closing first
      // (tryShutdown's GOAWAY) left a client with a connection to wait on a
      // reconnect with backoff, or until its deadline with wait-for-ready (issue 18).
      if (!(await Promise.race([tracker.idle().then(() => true), sleep(graceMs).then(() => false)]))) {
        log.warn({ calls: tracker.size }, 'grace period over: cancelling calls');
        tracker.abortAll(new Unavailable('server is shutting down'));
        await Promise.race([tracker.idle(), sleep(CANCEL_FLUSH_MS)]);
      }
      // The last messages flush as the connections close; whatever is left (health watches) is cut.
      const closed = new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      await Promise.race([closed, sleep(CANCEL_FLUSH_MS)]);
      server.forceShutdown();
      log.info('gRPC server stopped');
    })();
    return closing;
  };
  return { port, shutdown };
}
