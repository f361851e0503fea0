/**
 * gentune's Prometheus metrics: one prom-client Registry per service (never
 * the global one), every family prefixed `gentune_`. The engine and the gRPC
 * layer do not import prom-client: they call plain interfaces (EngineMetrics,
 * RpcMetrics) that this class implements, one file per concern:
 *
 *   rpc-metrics.ts         gentune_rpc_*          calls by method and code, durations
 *   generation-metrics.ts  gentune_generation_*   TTFT, inter-token, e2e, queue, tokens, batch
 *   adapter-metrics.ts     gentune_adapter(s)_*   per-adapter traffic, residency, loads
 *   fine-tune-metrics.ts   gentune_finetune_*     jobs by state, the running job's progress
 *   runtime-metrics.ts     gentune_tfjs_*, *_info, process and Node.js metrics
 */
import { Registry } from 'prom-client';
import type { EngineMetrics, EngineSnapshot, JobProgress } from '../engine/engine-metrics.js';
import type { FinishReason } from '../engine/engine-api.js';
import { AdapterLabels, DEFAULT_ADAPTER_LABEL_LIMIT } from './adapter-labels.js';
import { AdapterMetrics } from './adapter-metrics.js';
import { FineTuneMetrics } from './fine-tune-metrics.js';
import { GenerationMetrics } from './generation-metrics.js';
import { PromRpcMetrics, type RpcMetrics } from './rpc-metrics.js';
import { RuntimeMetrics } from './runtime-metrics.js';

/** Prefix of every metric family. */
export const METRIC_PREFIX = 'gentune_';

export interface MetricsOptions {
  /** Distinct values of the `adapter` label before "(other)". Default 50. */
  adapterLabelLimit?: number;
  /** Export process and Node.js metrics (prom-client's defaults). Default true. */
  processMetrics?: boolean;
}

/** The service's registry, and the hooks that fill it. */
export class GentuneMetrics {
  readonly registry = new Registry();
  /** Pass to startServer (src/server). */
  readonly rpc: RpcMetrics;
  /** Pass to createEngine (src/engine). */
  readonly engine: EngineMetrics;

  constructor(options: MetricsOptions = {}) {
    const prefix = METRIC_PREFIX;
    this.rpc = new PromRpcMetrics(this.registry, prefix);
    this.engine = new PromEngineMetrics(
      new GenerationMetrics(this.registry, prefix),
      new AdapterMetrics(this.registry, prefix, new AdapterLabels(options.adapterLabelLimit ?? DEFAULT_ADAPTER_LABEL_LIMIT)),
      new FineTuneMetrics(this.registry, prefix),
      new RuntimeMetrics(this.registry, prefix, options.processMetrics ?? true),
    );
  }

  /** Content-Type of {@link text} (Prometheus text format 0.0.4). */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition, as /metrics serves it. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}

/** Routes each engine event to the metrics of its concern. */
class PromEngineMetrics implements EngineMetrics {
  constructor(
    private readonly generation: GenerationMetrics,
    private readonly adapters: AdapterMetrics,
    private readonly fineTune: FineTuneMetrics,
    private readonly runtime: RuntimeMetrics,
  ) {}

  bindEngine(s: EngineSnapshot): void {
    this.generation.bind(s.sequences);
    this.adapters.bind(s.adapters);
    this.fineTune.bind(s.jobs);
    this.runtime.bind(s);
  }

  onQueued(adapter: string): void {
    this.generation.queued();
    this.adapters.request(adapter);
  }

  onPrefill(adapter: string, promptTokens: number, queueMs: number): void {
    this.generation.prefill(promptTokens, queueMs);
    this.adapters.prompt(adapter, promptTokens);
  }

  onFirstToken(adapter: string, ttftMs: number): void {
    this.generation.firstToken(ttftMs);
    this.adapters.token(adapter);
  }

  onNextToken(adapter: string, interTokenMs: number): void {
    this.generation.nextToken(interTokenMs);
    this.adapters.token(adapter);
  }

  onFinish(reason: FinishReason | 'error', e2eMs: number): void {
    this.generation.finish(reason, e2eMs);
  }

  onDecodeStep(batchSize: number): void {
    this.generation.decodeStep(batchSize);
  }

  onAdapterLoad(ms: number, ok: boolean): void {
    this.adapters.load(ms, ok);
  }

  onAdapterEvicted(): void {
    this.adapters.evicted();
  }

  onJobStarted(jobId: string, adapter: string, totalSteps: number): void {
    this.fineTune.started(jobId, adapter, totalSteps);
  }

  onJobProgress(jobId: string, progress: JobProgress): void {
    this.fineTune.progress(jobId, progress);
  }

  onJobEvaluation(jobId: string, evalLoss: number): void {
    this.fineTune.evaluation(jobId, evalLoss);
  }
}
