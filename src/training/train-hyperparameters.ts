import { InvalidArgument } from '../common/errors.js';
import { validateLrSchedule, type LrScheduleKind } from './lr-schedule.js';
import type { TrainMethod } from './trainable.js';

/** Training settings; absent fields take the defaults of fine_tune.proto. */
export interface TrainHyperparameters {
  /** Passes over the training set (default 3; may be fractional). Ignored when maxSteps is set. */
  epochs?: number;
  /** Optimizer steps; overrides epochs. */
  maxSteps?: number;
  /** Sequences per micro-batch (default 8). */
  batchSize?: number;
  /** Micro-batches per optimizer step (default 1). */
  gradientAccumulationSteps?: number;
  /** Peak learning rate (default 2e-4 for LoRA, 5e-5 for last_layers). */
  learningRate?: number;
  /** Optimizer steps of linear warmup (default 0). */
  warmupSteps?: number;
  /** Decay after warmup (default cosine). */
  schedule?: LrScheduleKind;
  /** Final learning rate as a share of the peak (default 0). */
  minLrRatio?: number;
  /** AdamW decoupled weight decay (default 0); never applied to biases and LayerNorm weights. */
  weightDecay?: number;
  /** Global gradient-norm clip (default 1.0; 0 turns clipping off). */
  maxGradNorm?: number;
  /** Evaluate every this many optimizer steps (default 0: only at the end). */
  evalIntervalSteps?: number;
  /** Stop after this many evaluations without a lower validation loss (default 0: never). */
  earlyStoppingPatience?: number;
  /**
   * Return the weights of the lowest validation loss rather than the last
   * ones (default: true when early stopping is on).
   */
  restoreBestWeights?: boolean;
  /** Seed of initialisation, batch order and dropout (default 42). */
  seed?: number;
  /** Take a checkpoint every this many optimizer steps (default 0: never). */
  checkpointIntervalSteps?: number;
  /** Sequences per evaluation forward pass (default: batchSize). */
  evalBatchSize?: number;
}

/** Default passes over the training set. */
export const DEFAULT_EPOCHS = 3;
/** Default sequences per micro-batch. */
export const DEFAULT_BATCH_SIZE = 8;
/** Default seed. */
export const DEFAULT_SEED = 42;

/** The default peak learning rate of a method: 2e-4 for LoRA, 5e-5 for last_layers (full weights move further per step). */
export function defaultLearningRate(method: Pick<TrainMethod, 'kind'>): number {
  return method.kind === 'lora' ? 2e-4 : 5e-5;
}

/** Hyperparameters with every default filled in. */
export type ResolvedHyperparameters = Required<Omit<TrainHyperparameters, 'maxSteps'>> & { maxSteps?: number };

/** Fills defaults and checks ranges; messages name the field and the value. */
export function resolveHyperparameters(
  hp: TrainHyperparameters,
  method: TrainMethod,
  hasValidation: boolean,
): ResolvedHyperparameters {
  const batchSize = hp.batchSize ?? DEFAULT_BATCH_SIZE;
  const patience = hp.earlyStoppingPatience ?? 0;
  const r: ResolvedHyperparameters = {
    epochs: hp.epochs ?? DEFAULT_EPOCHS,
    maxSteps: hp.maxSteps,
    batchSize,
    gradientAccumulationSteps: hp.gradientAccumulationSteps ?? 1,
    learningRate: hp.learningRate ?? defaultLearningRate(method),
    warmupSteps: hp.warmupSteps ?? 0,
    schedule: hp.schedule ?? 'cosine',
    minLrRatio: hp.minLrRatio ?? 0,
    weightDecay: hp.weightDecay ?? 0,
    maxGradNorm: hp.maxGradNorm ?? 1.0,
    evalIntervalSteps: hp.evalIntervalSteps ?? 0,
    earlyStoppingPatience: patience,
    restoreBestWeights: hp.restoreBestWeights ?? patience > 0,
    seed: hp.seed ?? DEFAULT_SEED,
    checkpointIntervalSteps: hp.checkpointIntervalSteps ?? 0,
    evalBatchSize: hp.evalBatchSize ?? batchSize,
  };
  if (!(r.epochs > 0) || !Number.isFinite(r.epochs)) throw new InvalidArgument(`\`epochs\` must be > 0, got ${r.epochs}`);
  positiveInteger(r.maxSteps, 'max_steps', true);
  positiveInteger(r.batchSize, 'batch_size');
  positiveInteger(r.gradientAccumulationSteps, 'gradient_accumulation_steps');
  positiveInteger(r.evalBatchSize, 'eval_batch_size');
  nonNegativeInteger(r.evalIntervalSteps, 'eval_interval_steps');
  nonNegativeInteger(r.earlyStoppingPatience, 'early_stopping_patience');
  nonNegativeInteger(r.checkpointIntervalSteps, 'checkpoint_interval_steps');
  if (!Number.isSafeInteger(r.seed) || r.seed < 0) {
    throw new InvalidArgument(`\`seed\` must be a non-negative integer, got ${r.seed}`);
  }
  if (!(r.maxGradNorm >= 0)) throw new InvalidArgument(`\`max_grad_norm\` must be >= 0, got ${r.maxGradNorm}`);
  if (!(r.weightDecay >= 0) || !Number.isFinite(r.weightDecay)) {
    throw new InvalidArgument(`\`weight_decay\` must be >= 0, got ${r.weightDecay}`);
  }
  if (r.earlyStoppingPatience > 0 && !hasValidation) {
    throw new InvalidArgument(
      `\`early_stopping_patience\` ${r.earlyStoppingPatience} needs validation data (a validation set or validation_split)`,
    );
  }
  // totalSteps is checked once known; 1 stands in for it here.
  const { learningRate, warmupSteps, schedule: kind, minLrRatio } = r;
  validateLrSchedule({ learningRate, warmupSteps, totalSteps: 1, kind, minLrRatio });
  return r;
}

/** The run's optimizer steps: maxSteps, else ceil(epochs * batchesPerEpoch / accumulation). */
export function plannedSteps(hp: ResolvedHyperparameters, batchesPerEpoch: number): number {
  return hp.maxSteps ?? Math.max(1, Math.ceil((hp.epochs * batchesPerEpoch) / hp.gradientAccumulationSteps));
}

/** A uint32 seed for an Rng stream from the run's seed (up to 2^53) and a salt. */
export function streamSeed(seed: number, salt: number): number {
  return ((seed % 0x100000000) ^ Math.floor(seed / 0x100000000) ^ salt) >>> 0;
}

function positiveInteger(value: number | undefined, name: string, optional = false): void {
  if (optional && value === undefined) return;
  if (!Number.isInteger(value) || value! <= 0) throw new InvalidArgument(`\`${name}\` must be a positive integer, got ${value}`);
}

function nonNegativeInteger(value: number, name: string): void {
  if (!Number.isInteger(value) || value < 0) {
    throw new InvalidArgument(`\`${name}\` must be a non-negative integer, got ${value}`);
  }
}
