/**
 * Per-call metrics: every call the servers wrap (src/server/rpc.ts, src/http/http-call.ts) is counted
 * by method and final status code, and timed from admission to its last
 * message. Calls refused at admission (draining, not ready, too many streams)
 * count too, with their near-zero duration.
 */
import { Counter, Histogram, type Registry } from 'prom-client';

/** Which front door a call came through: gRPC (src/server) or the OpenAI HTTP API (src/http). */
export type Api = 'grpc' | 'openai';

/** What src/server/rpc.ts and src/http report; neither imports prom-client. */
export interface RpcMetrics {
  /**
   * A call ended: `method` as in the proto ("Generate") or the OpenAI
   * operation ("chat.completions"), `code` a gRPC status name ("OK",
   * "INVALID_ARGUMENT"; the HTTP API reports the same names, so one alert
   * covers both), `seconds` its duration. `api` defaults to 'grpc'.
   */
  onCall(method: string, code: string, seconds: number, api?: Api): void;
}

/** Streams (Generate, FineTune) can last minutes; unary reads take milliseconds. */
const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800];

/** Prometheus implementation of {@link RpcMetrics}. */
export class PromRpcMetrics implements RpcMetrics {
  private readonly requests: Counter<'api' | 'method' | 'code'>;
  private readonly duration: Histogram<'api' | 'method'>;

  constructor(registry: Registry, prefix: string) {
    this.requests = new Counter({
      name: `${prefix}rpc_requests_total`,
      help: 'Calls handled (gRPC and the OpenAI HTTP API), by api, method and final status code.',
      labelNames: ['api', 'method', 'code'],
      registers: [registry],
    });
    this.duration = new Histogram({
      name: `${prefix}rpc_duration_seconds`,
      help: 'Duration of calls (gRPC and the OpenAI HTTP API) from admission to the last message, in seconds.',
      labelNames: ['api', 'method'],
      buckets: DURATION_BUCKETS,
      registers: [registry],
    });
  }

  onCall(method: string, code: string, seconds: number, api: Api = 'grpc'): void {
    this.requests.inc({ api, method, code });
    this.duration.observe({ api, method }, seconds);
  }
}
