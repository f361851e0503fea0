/**
 * One fine-tune job's training, wherever it runs: read and tokenize its
 * examples, hold out its validation set, and call the trainer. The fine-tune
 * worker (fine-tune-worker.ts) runs this on its own copy of the base model;
 * with `threads: false` the runner calls it on the serving model directly
 * (see {@link inProcessTrainer}).
 */
import { InvalidArgument } from '../../common/errors.js';
import { disposeAdapter, type Adapter } from '../../model/adapter.js';
import type { GptConfig } from '../../model/gpt-config.js';
import type { GptWeights } from '../../model/gpt-weights.js';
import type { LoraTarget } from '../../model/lora.js';
import type { Tokenizer } from '../../model/tokenizer/tokenizer.js';
import type { NumberedExample } from '../../training/data/sft-example.js';
import { resolveValidation } from '../../training/data/split.js';
import type { TokenizedExample } from '../../training/data/tokenize-example.js';
import type { LossEvaluation } from '../../training/evaluate-loss.js';
import type { TrainHyperparameters } from '../../training/train-hyperparameters.js';
import type { TrainMethod } from '../../training/trainable.js';
import { train, type EvaluationEvent, type ProgressEvent, type StartEvent } from '../../training/trainer.js';
import type { DatasetStore } from '../dataset-store.js';
import type { DataSource, FineTuneMethod, FineTuneSpec, Hyperparameters } from '../engine-api.js';
import { readExamples, tokenizeExamples } from '../examples.js';

/** PEFT's target_modules names for GPT-2 -> the modules they select ("c_proj" is both projections). */
const TARGETS: Record<string, LoraTarget[]> = {
  c_attn: ['attn.c_attn'],
  c_proj: ['attn.c_proj', 'mlp.c_proj'],
  'attn.c_proj': ['attn.c_proj'],
  c_fc: ['mlp.c_fc'],
  'mlp.c_proj': ['mlp.c_proj'],
};

/** What a job trains over: the base model's shape, frozen weights and tokenizer. */
export interface JobModel {
  config: GptConfig;
  weights: GptWeights;
  tokenizer: Tokenizer;
  /** Recorded in the adapter as its base model. */
  name: string;
}

/** Reads the examples of a data source; `field` names the request field in errors. */
export type ReadExamples = (source: DataSource, field: string) => Promise<NumberedExample[]>;

/** What the runner hears of a job while it trains; each call is awaited before training goes on, where it runs in-process. */
export interface JobCallbacks {
  onStart(event: StartEvent): Promise<void>;
  onProgress(event: ProgressEvent): Promise<void>;
  onEvaluation(event: EvaluationEvent): Promise<void>;
  onCheckpoint(event: { step: number }): Promise<void>;
}

/** A finished run's numbers. */
export interface JobTrainSummary {
  status: 'completed' | 'early_stopped';
  steps: number;
  /** Loss of the last step, nats per loss token; null when no step ran. */
  trainLoss: number | null;
  evaluation?: LossEvaluation;
  lossTokens: number;
  trainSeconds: number;
}

/**
 * How a job's training ended. A finished run hands over its adapter: trained
 * on this thread, its tensors (the caller owns them and publishes them);
 * trained in a worker, the version the worker stored and the serving store
 * has published.
 */
export type JobTrainResult = TrainedHere | (JobTrainSummary & { storedVersion: number });

/** A run on the calling thread: cancelled, or finished with the adapter's tensors. */
export type TrainedHere = { status: 'cancelled' } | (JobTrainSummary & { adapter: Adapter });

/**
 * Trains one job: in a worker thread of its own, or on the calling thread.
 * When `signal` aborts with a Cancelled reason the run stops at a step
 * boundary and resolves 'cancelled'; another reason (shutdown) may reject
 * with it at once.
 */
export type JobTrainer = (job: { id: string; spec: FineTuneSpec }, callbacks: JobCallbacks, signal: AbortSignal) => Promise<JobTrainResult>;

/** Runs jobs on the calling thread, over the serving model's weights (`threads: false`). */
export function inProcessTrainer(model: JobModel, datasets: DatasetStore): JobTrainer {
  return (job, callbacks, signal) => trainJob(model, job.spec, (source, field) => readExamples(source, datasets, field), callbacks, signal);
}

/** Reads, tokenizes and splits the job's examples, then trains. */
export async function trainJob(
  model: JobModel,
  spec: FineTuneSpec,
  read: ReadExamples,
  callbacks: JobCallbacks,
  signal: AbortSignal,
): Promise<TrainedHere> {
  const { trainSet, validationSet } = await jobExamples(model, spec, read);
  if (signal.aborted) throw signal.reason;
  const result = await train({
    config: model.config,
    weights: model.weights,
    baseModel: model.name,
    method: trainMethod(spec.method),
    train: trainSet,
    validation: validationSet,
    padId: model.tokenizer.eosId,
    hyperparameters: trainHyperparameters(spec.hyperparameters),
    signal,
    callbacks: {
      onStart: (e) => callbacks.onStart(e),
      onProgress: (e) => callbacks.onProgress(e),
      onEvaluation: (e) => callbacks.onEvaluation(e),
      onCheckpoint: (e) => callbacks.onCheckpoint({ step: e.step }),
    },
  });
  if (result.status === 'cancelled') {
    disposeAdapter(result.adapter);
    return { status: 'cancelled' };
  }
  const { status, adapter, steps, trainLoss, evaluation, lossTokens, trainSeconds } = result;
  return { status, adapter, steps, trainLoss, evaluation, lossTokens, trainSeconds };
}

/** Reads and tokenizes the training (and validation) examples. */
async function jobExamples(
  model: JobModel,
  spec: FineTuneSpec,
  read: ReadExamples,
): Promise<{ trainSet: TokenizedExample[]; validationSet: TokenizedExample[] }> {
  const h = spec.hyperparameters;
  const maxSeqLen = h.maxSeqLen ?? Math.min(512, model.config.nPositions);
  const completionOnly = h.completionOnlyLoss ?? true;
  const tokenize = async (source: DataSource, field: string) =>
    tokenizeExamples(await read(source, field), model.tokenizer, maxSeqLen, completionOnly);
  const trainSet = await tokenize(spec.training, 'dataset_id');
  const validation = spec.validationDatasetId === undefined
    ? undefined
    : await tokenize({ datasetId: spec.validationDatasetId }, 'validation_dataset_id');
  const split = resolveValidation(trainSet, {
    validation,
    validationRatio: validation ? undefined : h.validationSplit,
    seed: h.seed ?? 42,
  });
  return { trainSet: split.train, validationSet: split.validation };
}

/** The engine's method (PEFT names, defaults unset) -> the trainer's. */
export function trainMethod(m: FineTuneMethod): TrainMethod {
  if (m.kind === 'last_layers') return { kind: 'last_layers', numLayers: m.numLayers };
  const names = m.targetModules.length > 0 ? m.targetModules : ['c_attn'];
  const targets = new Set<LoraTarget>();
  names.forEach((n, i) => {
    const t = TARGETS[n];
    if (!t) throw new InvalidArgument(`\`target_modules[${i}]\` must be one of ${Object.keys(TARGETS).join(', ')}, got ${JSON.stringify(n)}`);
    for (const x of t) targets.add(x);
  });
  return { kind: 'lora', r: m.r ?? 8, alpha: m.loraAlpha ?? 16, dropout: m.loraDropout ?? 0.05, targetModules: [...targets] };
}

/** The engine's hyperparameters -> the trainer's (maxSeqLen, completion-only and the split are applied in {@link trainJob}). */
export function trainHyperparameters(h: Hyperparameters): TrainHyperparameters {
  return {
    epochs: h.epochs,
    maxSteps: h.maxSteps,
    batchSize: h.batchSize,
    gradientAccumulationSteps: h.gradientAccumulationSteps,
    learningRate: h.learningRate,
    warmupSteps: h.warmupSteps,
    schedule: h.lrScheduler,
    weightDecay: h.weightDecay,
    maxGradNorm: h.maxGradNorm,
    evalIntervalSteps: h.evalIntervalSteps,
    earlyStoppingPatience: h.earlyStoppingPatience,
    seed: h.seed,
  };
}
