/**
 * One fine-tune job's training, wherever it runs: read and tokenize its
 * examples, hold out its validation set, and call the trainer. The fine-tune
 * worker (fine-tune-worker.ts) runs this on its own copy of the base model;
 * with `threads: false` the runner calls it on the serving model directly
 * (see {@link inProcessTrainer}).
 *
 * Crash safety: the trainer's checkpoint is written to the job's folder
 * (job-checkpoint.ts) every `checkpointIntervalMs` of training and when the
 * run is suspended (shutdown: checkpoint at the next step boundary, then
 * stop). A job that finds a checkpoint resumes from it, and ends with the
 * adapter an uninterrupted run would have (the trainer's resume is exact); an
 * unreadable checkpoint, or one that does not fit the job, is logged and the
 * job starts over from step 0.
 */
import type { Logger } from 'pino';
import { disposeAdapter, type Adapter } from '../model/adapter.js';
import type { GptConfig } from '../model/gpt-config.js';
import type { GptWeights } from '../model/gpt-weights.js';
import { familyModules, targetsFromNames } from '../model/family-modules.js';
import type { Tokenizer } from '../model/tokenizer/tokenizer.js';
import type { NumberedExample } from '../training/data/sft-example.js';
import { resolveValidation } from '../training/data/split.js';
import type { TokenizedExample } from '../training/data/tokenize-example.js';
import type { LossEvaluation } from '../training/evaluate-loss.js';
import type { TrainHyperparameters } from '../training/train-hyperparameters.js';
import type { TrainMethod } from '../training/trainable.js';
import { train, type EvaluationEvent, type ProgressEvent, type StartEvent } from '../training/trainer.js';
import type { DatasetStore } from './dataset-store.js';
import type { DataSource, FinalMetrics, FineTuneMethod, FineTuneSpec, Hyperparameters } from './engine-api.js';
import { readExamples, tokenizeExamples } from './examples.js';
import type { ChatSegmenter } from '../training/data/tokenize-example.js';
import { readJobCheckpoint, removeJobCheckpoint, writeJobCheckpoint } from './job-checkpoint.js';
import type { LeaseRef } from './job-lease.js';

/** Default training time between two checkpoints of a job, in milliseconds (config `checkpointIntervalMs`). */
export const DEFAULT_CHECKPOINT_INTERVAL_MS = 30_000;

/** What a job trains over: the base model's shape, frozen weights and tokenizer. */
export interface JobModel {
  config: GptConfig;
  weights: GptWeights;
  tokenizer: Tokenizer;
  /** Renders chat examples: the model's chat template (default gentune's own). */
  chat?: ChatSegmenter;
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

/** A finished run's numbers as the job's `succeeded` event (and the stored version's gentune.json) report them. */
export function finalMetrics(r: JobTrainSummary): FinalMetrics {
  return {
    trainLoss: r.trainLoss ?? Number.NaN,
    evalLoss: r.evaluation?.loss,
    perplexity: r.evaluation?.perplexity,
    steps: r.steps,
    tokens: r.lossTokens,
    trainSeconds: r.trainSeconds,
  };
}

/**
 * How a job's training ended, the same wherever it ran: cancelled,
 * suspended, or finished with its adapter stored and published as
 * `storedVersion` (by the trainer: in a worker, the worker stores it and the
 * serving thread adopts it; on this thread, the registry publishes it).
 */
export type JobTrainResult = { status: 'cancelled' } | Suspended | (JobTrainSummary & { storedVersion: number });

/** A run stopped by shutdown after saving its checkpoint at `step` (0: before its first step, none saved). */
export interface Suspended {
  status: 'suspended';
  step: number;
}

/** What {@link trainJob} returns: cancelled, suspended, or finished with the adapter's tensors (the trainer then stores them). */
export type TrainedHere = { status: 'cancelled' } | Suspended | (JobTrainSummary & { adapter: Adapter });

/** A job to train, and where its checkpoint lives. */
export interface JobToTrain {
  id: string;
  spec: FineTuneSpec;
  /** The job's checkpoint file (JobStore.checkpointPath): resumed from when present, replaced at every checkpoint. */
  checkpointPath: string;
  /** The lease the run holds (job-lease.ts): its adapter is stored only while it is still this run's. */
  lease?: LeaseRef;
}

/** How the runner steers a run. */
export interface JobControl {
  /**
   * A user's cancel (Cancelled reason): stop at the next step boundary and
   * resolve 'cancelled'. Another reason (shutdown past its grace period) may
   * reject with it at once.
   */
  signal: AbortSignal;
  /** Shutdown: save a checkpoint at the next step boundary, then stop and resolve 'suspended'. */
  suspend: AbortSignal;
  /** Asked right before the adapter is published: false (the job's lease was lost) publishes nothing. */
  mayPublish: () => boolean;
}

/** Stores and publishes a trained adapter for job `jobId` (taking its tensors); resolves with the version. */
export type PublishAdapter = (name: string, adapter: Adapter, jobId: string, metrics: FinalMetrics, mayPublish: () => boolean) => Promise<number>;

/** Trains one job: in a worker thread of its own, or on the calling thread. */
export type JobTrainer = (job: JobToTrain, callbacks: JobCallbacks, control: JobControl) => Promise<JobTrainResult>;

/** How often a run checkpoints, and where it reports. */
export interface CheckpointOptions {
  /** Training milliseconds between checkpoints, checked at step boundaries (0: after every step). */
  checkpointIntervalMs: number;
  log: Logger;
}

/** Runs jobs on the calling thread, over the serving model's weights (`threads: false`), publishing each adapter with `publish`. */
export function inProcessTrainer(model: JobModel, datasets: DatasetStore, options: CheckpointOptions & { publish: PublishAdapter }): JobTrainer {
  return async (job, callbacks, control) => {
    const r = await trainJob(model, job, (source, field) => readExamples(source, datasets, field), callbacks, control, {
      ...options,
      log: options.log.child({ jobId: job.id }),
    });
    if (r.status === 'cancelled' || r.status === 'suspended') return r;
    const { adapter, ...summary } = r;
    return { ...summary, storedVersion: await options.publish(job.spec.adapter, adapter, job.id, finalMetrics(summary), control.mayPublish) };
  };
}

/**
 * Reads, tokenizes and splits the job's examples, then trains: from the
 * job's checkpoint when it has a usable one, else from step 0.
 */
export async function trainJob(
  model: JobModel,
  job: JobToTrain,
  read: ReadExamples,
  callbacks: JobCallbacks,
  control: Pick<JobControl, 'signal' | 'suspend'>,
  options: CheckpointOptions,
): Promise<TrainedHere> {
  const { spec, checkpointPath } = job;
  const { signal, suspend } = control;
  const { log } = options;
  const { trainSet, validationSet } = await jobExamples(model, spec, read);
  if (signal.aborted) throw signal.reason;
  const resumeFrom = await readJobCheckpoint(checkpointPath, log);
  if (suspend.aborted) return { status: 'suspended', step: resumeFrom?.state.step ?? 0 };
  // The trainer stops through `stop`: a user's cancel, or right after the checkpoint a suspend asked for.
  const stop = new AbortController();
  const onCancel = (): void => stop.abort(signal.reason);
  signal.addEventListener('abort', onCancel, { once: true });
  let lastCheckpointMs = performance.now();
  let suspendedAt: number | undefined;
  let started = false;
  const run = (from: typeof resumeFrom) =>
    train({
      config: model.config,
      weights: model.weights,
      baseModel: model.name,
      method: trainMethod(spec.method, model.config),
      train: trainSet,
      validation: validationSet,
      padId: model.tokenizer.eosId,
      hyperparameters: trainHyperparameters(spec.hyperparameters),
      signal: stop.signal,
      resumeFrom: from,
      checkpointDue: () => suspend.aborted || performance.now() - lastCheckpointMs >= options.checkpointIntervalMs,
      callbacks: {
        onStart: (e) => {
          started = true;
          if (e.startStep > 0) log.info({ step: e.startStep, totalSteps: e.totalSteps }, 'fine-tune job resumes from its checkpoint');
          return callbacks.onStart(e);
        },
        onProgress: (e) => callbacks.onProgress(e),
        onEvaluation: (e) => callbacks.onEvaluation(e),
        onCheckpoint: async (e) => {
          // Durable before anyone hears of it.
          await writeJobCheckpoint(checkpointPath, e.checkpoint);
          lastCheckpointMs = performance.now();
          await callbacks.onCheckpoint({ step: e.step });
          if (suspend.aborted && !stop.signal.aborted) {
            suspendedAt = e.step;
            stop.abort();
          }
        },
      },
    });
  let result: Awaited<ReturnType<typeof train>>;
  try {
    try {
      result = await run(resumeFrom);
    } catch (err) {
      // A checkpoint that reads back but does not fit the job (another shape, another plan): start over.
      if (!resumeFrom || started || stop.signal.aborted) throw err;
      log.warn({ file: checkpointPath, err }, 'the fine-tune checkpoint does not fit the job: it starts over from step 0');
      await removeJobCheckpoint(checkpointPath);
      result = await run(undefined);
    }
  } finally {
    signal.removeEventListener('abort', onCancel);
  }
  if (result.status === 'cancelled') {
    disposeAdapter(result.adapter);
    if (suspendedAt !== undefined && !signal.aborted) return { status: 'suspended', step: suspendedAt };
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
    tokenizeExamples(await read(source, field), model.tokenizer, maxSeqLen, completionOnly, model.chat);
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

/**
 * The engine's method (PEFT names, defaults unset) -> the trainer's, for a base
 * model of `config`'s family: target_modules are its PEFT names (GPT-2's
 * `c_proj` is both projections), none meaning PEFT's default for it.
 * @throws InvalidArgument naming a target module the model's family lacks.
 */
export function trainMethod(m: FineTuneMethod, config: GptConfig): TrainMethod {
  if (m.kind === 'last_layers') return { kind: 'last_layers', numLayers: m.numLayers };
  const targetModules = targetsFromNames(familyModules(config), m.targetModules);
  return { kind: 'lora', r: m.r ?? 8, alpha: m.loraAlpha ?? 16, dropout: m.loraDropout ?? 0.05, targetModules };
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
