/**
 * The HTTP side of the server, on its own port (--metrics-port) next to gRPC:
 *
 *   GET /metrics   Prometheus exposition of the service's registry
 *   GET /healthz   200 while the process is alive (liveness)
 *   GET /readyz    200 when the base model is loaded and the server is not
 *                  draining, else 503 (readiness)
 *
 * It only does I/O on the main thread: /metrics reads counters and the
 * engine's gauges, never waits on the model.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';

export interface HttpEndpointOptions {
  /** Interface to bind. */
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** The exposition and its content type (GentuneMetrics). */
  metrics: { text(): Promise<string>; readonly contentType: string };
  /** True when the server should receive traffic: base model loaded, not draining. */
  ready(): boolean;
  log?: Pick<Logger, 'info' | 'error'>;
}

/** A running endpoint. */
export interface HttpEndpoint {
  /** The bound port (the real one when asked for 0). */
  port: number;
  /** Stops listening and closes every connection (scrapers keep theirs alive). Idempotent. */
  close(): Promise<void>;
}

const TEXT = 'text/plain; charset=utf-8';

/** Starts the endpoint; resolves once it listens. */
export async function startHttpEndpoint(options: HttpEndpointOptions): Promise<HttpEndpoint> {
  const server = createServer((req, res) => {
    handle(req, res, options).catch((err: unknown) => {
      options.log?.error({ err, path: req.url }, 'metrics endpoint failed');
      if (!res.headersSent) reply(res, 500, TEXT, 'internal error\n');
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  options.log?.info({ address: `${options.host.includes(':') ? `[${options.host}]` : options.host}:${port}` }, 'metrics endpoint listening');
  let closing: Promise<void> | undefined;
  return {
    port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

async function handle(req: IncomingMessage, res: ServerResponse, options: HttpEndpointOptions): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://localhost').pathname;
  if (path !== '/metrics' && path !== '/healthz' && path !== '/readyz') {
    reply(res, 404, TEXT, 'not found: try /metrics, /healthz or /readyz\n');
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    reply(res, 405, TEXT, 'method not allowed\n');
    return;
  }
  if (path === '/healthz') reply(res, 200, TEXT, 'ok\n');
  else if (path === '/readyz') {
    if (options.ready()) reply(res, 200, TEXT, 'ready\n');
    else reply(res, 503, TEXT, 'not ready\n');
  } else reply(res, 200, options.metrics.contentType, await options.metrics.text());
}

function reply(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
