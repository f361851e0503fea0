/**
 * Per-RPC metrics: every call the server wraps (src/server/rpc.ts) is counted
 * by method and final status code, and timed from admission to its last
 * message. Calls refused at admission (draining, not ready, too many streams)
 * count too, with their near-zero duration.
 */
import { Counter, Histogram, type Registry } from 'prom-client';

/** What src/server/rpc.ts reports; the server never imports prom-client. */
export interface RpcMetrics {
  /** A call ended: `method` as in the proto ("Generate"), `code` a gRPC status name ("OK"), `seconds` its duration. */
  onCall(method: string, code: string, seconds: number): void;
}

/** Streams (Generate, FineTune) can last minutes; unary reads take milliseconds. */
const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800];

/** Prometheus implementation of {@link RpcMetrics}. */
export class PromRpcMetrics implements RpcMetrics {
  private readonly requests: Counter<'method' | 'code'>;
  private readonly duration: Histogram<'method'>;

  constructor(registry: Registry, prefix: string) {
    this.requests = new Counter({
      name: `${prefix}rpc_requests_total`,
      help: 'gRPC calls handled, by method and final status code.',
      labelNames: ['method', 'code'],
      registers: [registry],
    });
    this.duration = new Histogram({
      name: `${prefix}rpc_duration_seconds`,
      help: 'Duration of gRPC calls from admission to the last message, in seconds.',
      labelNames: ['method'],
      buckets: DURATION_BUCKETS,
      registers: [registry],
    });
  }

  onCall(method: string, code: string, seconds: number): void {
    this.requests.inc({ method, code });
    this.duration.observe({ method }, seconds);
  }
}
