/** Engine domain types (see ../engine-api.ts): Fine-tune jobs: the request, the job's state and its durable event log. */
import type { DataSource } from './datasets.js';

/** LoRA settings (PEFT names); undefined fields take defaults r=8, alpha=16, dropout=0.05, ["c_attn"]. */
export interface LoraMethod {
  kind: 'lora';
  r?: number;
  loraAlpha?: number;
  loraDropout?: number;
  /** Subset of "c_attn", "c_proj", "attn.c_proj", "c_fc", "mlp.c_proj"; empty = default. */
  targetModules: string[];
}

/** Train the top `numLayers` blocks (1..n_layer) and the final layer norm. */
export interface LastLayersMethod {
  kind: 'last_layers';
  numLayers: number;
}

export type FineTuneMethod = LoraMethod | LastLayersMethod;

export type LrScheduler = 'cosine' | 'linear' | 'constant';

/** Training hyperparameters; undefined = the default documented in fine_tune.proto. */
export interface Hyperparameters {
  epochs?: number;
  maxSteps?: number;
  batchSize?: number;
  gradientAccumulationSteps?: number;
  learningRate?: number;
  warmupSteps?: number;
  lrScheduler?: LrScheduler;
  weightDecay?: number;
  /** Tokens; the engine checks <= n_positions. */
  maxSeqLen?: number;
  evalIntervalSteps?: number;
  earlyStoppingPatience?: number;
  seed?: number;
  completionOnlyLoss?: boolean;
  /** Fraction held out, 0..0.5. */
  validationSplit?: number;
  maxGradNorm?: number;
}

/** A validated fine-tune request (also stored with the job and echoed back). */
export interface FineTuneSpec {
  /** '' = the served model; otherwise must equal it (FailedPrecondition). */
  baseModel: string;
  /** Output adapter name. */
  adapter: string;
  training: DataSource;
  /** undefined = use hyperparameters.validationSplit. */
  validationDatasetId?: string;
  method: FineTuneMethod;
  hyperparameters: Hyperparameters;
}

export type JobState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

/** Metrics of a finished job. */
export interface FinalMetrics {
  trainLoss: number;
  evalLoss?: number;
  perplexity?: number;
  steps: number;
  tokens: number;
  trainSeconds: number;
}

/** The payload of a job event (proto FineTuneEvent's oneof). */
export type JobEventBody =
  | { type: 'queued'; position: number }
  | {
      type: 'started';
      totalSteps: number;
      numTrainExamples: number;
      numValidationExamples: number;
      trainableParameters: number;
      /** Set when the job resumed from its checkpoint after a restart: the steps already done. */
      resumedFromStep?: number;
    }
  | {
      type: 'progress';
      step: number;
      totalSteps: number;
      /** Fractional epochs done. */
      epoch: number;
      loss: number;
      learningRate: number;
      gradNorm: number;
      tokensPerSecond: number;
      etaSeconds: number;
    }
  | { type: 'evaluation'; step: number; evalLoss: number; perplexity: number }
  | { type: 'checkpoint'; step: number }
  | { type: 'succeeded'; adapter: string; version: number; metrics: FinalMetrics }
  | { type: 'failed'; reason: string }
  | { type: 'cancelled' };

/** One entry of a job's durable event log. */
export type JobEvent = {
  jobId: string;
  /** Position in the log, from 0. */
  sequence: number;
  /** Epoch milliseconds. */
  timeMs: number;
} & JobEventBody;

/** A fine-tune job's current state. */
export interface JobInfo {
  id: string;
  state: JobState;
  spec: FineTuneSpec;
  createdAtMs: number;
  startedAtMs?: number;
  finishedAtMs?: number;
  step: number;
  totalSteps: number;
  /** Loss of the latest step. */
  loss?: number;
  /** Published version, when succeeded. */
  adapterVersion?: number;
  /** Failure reason (safe to show), when failed. */
  error?: string;
  metrics?: FinalMetrics;
}

/** Filter of {@link Engine.listJobs}. */
export interface JobFilter {
  state?: JobState;
  adapter?: string;
  /** 1..1000. */
  limit: number;
}
