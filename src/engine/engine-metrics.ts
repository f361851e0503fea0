/**
 * What the engine tells the outside world about its work, as plain method
 * calls: src/observability implements this interface for Prometheus, so the
 * engine never imports a metrics library. Durations are in milliseconds (the
 * engine's clock); `adapter` is "name@version", or '' for the base model.
 */
import type { DeviceMemoryInfo, FinishReason, JobState } from './engine-api.js';

/** Gauges read at scrape time, from the engine's own state. */
export interface EngineSnapshot {
  /** The TensorFlow.js backend and a description of its device. */
  backend: { name: string; device: string };
  /** Name of the base model. */
  model: string;
  /** gentune's version. */
  version: string;
  /** Sequences in the decode batch, and requests waiting for a slot. */
  sequences(): { running: number; waiting: number };
  /** Adapter versions resident on the backend, and their tensors' bytes. */
  adapters(): { resident: number; bytes: number };
  /** Fine-tune jobs in the job store, per state. */
  jobs(): Partial<Record<JobState, number>>;
  /** TensorFlow.js memory: tf.memory(), with the GPU byte counts on webgpu. */
  memory(): DeviceMemoryInfo;
}

/** A step of the running fine-tune job (the trainer's progress event). */
export interface JobProgress {
  step: number;
  totalSteps: number;
  /** Mean training loss of the step, nats per loss token. */
  loss: number;
  learningRate: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  tokensPerSecond: number;
}

/** Events of the engine; every method must be cheap and must not throw. */
export interface EngineMetrics {
  /** Gives the engine's gauges to the metrics (once, when the engine is up). */
  bindEngine(snapshot: EngineSnapshot): void;

  /** A Generate request entered the queue. */
  onQueued(adapter: string): void;
  /** A request joined the batch after waiting `queueMs`; its prompt is prefilled now. */
  onPrefill(adapter: string, promptTokens: number, queueMs: number): void;
  /** The first generated token, `ttftMs` after the request arrived. */
  onFirstToken(adapter: string, ttftMs: number): void;
  /** A later generated token, `interTokenMs` after the previous one. */
  onNextToken(adapter: string, interTokenMs: number): void;
  /** A request left, `e2eMs` after it arrived; 'error' when its decode step failed. */
  onFinish(reason: FinishReason | 'error', e2eMs: number): void;
  /** One forward pass decoded `batchSize` sequences. */
  onDecodeStep(batchSize: number): void;

  /** An adapter version was read from the store (ok) or failed to, taking `ms`. */
  onAdapterLoad(ms: number, ok: boolean): void;
  /** An idle adapter version was evicted to stay within the budget. */
  onAdapterEvicted(): void;

  /** A fine-tune job started training. */
  onJobStarted(jobId: string, adapter: string, totalSteps: number): void;
  /** The running job finished an optimizer step. */
  onJobProgress(jobId: string, progress: JobProgress): void;
  /** The running job finished a validation pass. */
  onJobEvaluation(jobId: string, evalLoss: number): void;
}

/** Metrics that go nowhere: the default when the engine runs without observability. */
export const noMetrics: EngineMetrics = {
  bindEngine() {},
  onQueued() {},
  onPrefill() {},
  onFirstToken() {},
  onNextToken() {},
  onFinish() {},
  onDecodeStep() {},
  onAdapterLoad() {},
  onAdapterEvicted() {},
  onJobStarted() {},
  onJobProgress() {},
  onJobEvaluation() {},
};
