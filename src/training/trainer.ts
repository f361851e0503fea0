import type * as tf from '@tensorflow/tfjs';
import { FailedPrecondition, InvalidArgument } from '../common/errors.js';
import { Rng } from '../common/rng.js';
import type { Adapter } from '../model/adapter.js';
import type { GptConfig } from '../model/gpt-config.js';
import type { GptWeights } from '../model/gpt-weights.js';
import { AdamW } from './adamw.js';
import { LengthBucketedBatcher } from './data/batcher.js';
import type { TokenSequence } from './data/token-sequence.js';
import { evaluateLoss, type LossEvaluation } from './evaluate-loss.js';
import { learningRateAt, validateLrSchedule, type LrSchedule } from './lr-schedule.js';
import type { HeadLossOptions } from './sft-loss.js';
import { optimizerStep, stepTokens, type StepContext } from './train-step.js';
import { plannedSteps, resolveHyperparameters, streamSeed, type TrainHyperparameters } from './train-hyperparameters.js';
import { createTrainable, type TrainMethod } from './trainable.js';
import {
  captureCheckpoint,
  restoreCheckpoint,
  type TrainerCheckpoint,
  type TrainerCheckpointState,
} from './trainer-checkpoint.js';
import { ThroughputMeter } from './throughput-meter.js';

/** Sent once before the first step. */
export interface StartEvent {
  totalSteps: number;
  trainableParameters: number;
  trainSequences: number;
  validationSequences: number;
  /** Steps already done (resumed run), else 0. */
  startStep: number;
}

/** Sent after every optimizer step. */
export interface ProgressEvent {
  /** Optimizer steps done, 1..totalSteps. */
  step: number;
  totalSteps: number;
  /** Fractional epochs done (batches taken / batches per epoch). */
  epoch: number;
  /** Mean training loss of the step, in nats per loss token. */
  loss: number;
  /** Learning rate the step used. */
  learningRate: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Non-pad input tokens per second over the last steps (training compute only). */
  tokensPerSecond: number;
  /** Estimated seconds until the last step, from the mean wall time per step so far. */
  etaSeconds: number;
}

/** Sent after every validation pass. */
export interface EvaluationEvent extends LossEvaluation {
  /** Optimizer step after which it ran. */
  step: number;
  /** Lowest validation loss so far. */
  isBest: boolean;
}

/** Sent every `checkpointIntervalSteps` steps. */
export interface CheckpointEvent {
  step: number;
  /** Pass to `resumeFrom` to continue from here. */
  checkpoint: TrainerCheckpoint;
  /**
   * The adapter as of this step, a copy the caller owns (disposeAdapter): for
   * saving it in PEFT layout. Callable only until the callback returns.
   */
  exportAdapter(): Adapter;
}

/** Hooks into a run; each may be async, and the run waits for it. */
export interface TrainCallbacks {
  onStart?(event: StartEvent): void | Promise<void>;
  onProgress?(event: ProgressEvent): void | Promise<void>;
  onEvaluation?(event: EvaluationEvent): void | Promise<void>;
  onCheckpoint?(event: CheckpointEvent): void | Promise<void>;
}

/** Input of {@link train}. */
export interface TrainOptions {
  config: GptConfig;
  /** Frozen base weights; never modified. */
  weights: GptWeights;
  /** Base model name recorded in the adapter. */
  baseModel?: string;
  method: TrainMethod;
  /** Tokenized (optionally packed) training sequences. */
  train: readonly TokenSequence[];
  validation?: readonly TokenSequence[];
  /** Padding token id (GPT-2: EOS). */
  padId: number;
  hyperparameters?: TrainHyperparameters;
  callbacks?: TrainCallbacks;
  /** Cancels at the next step boundary; the result then says `cancelled`. */
  signal?: AbortSignal;
  /** Continue a run from one of its checkpoints (same data, method and hyperparameters). */
  resumeFrom?: TrainerCheckpoint;
  /**
   * Asked after every optimizer step but the last: true takes a checkpoint
   * now, besides every `checkpointIntervalSteps` (a timer, or a shutdown
   * that wants one before it stops the run).
   */
  checkpointDue?: (step: number) => boolean;
  /** LM-head chunking (memory vs speed). */
  head?: HeadLossOptions;
}

/** How a run ended. */
export type TrainStatus = 'completed' | 'early_stopped' | 'cancelled';

/** Output of {@link train}. */
export interface TrainResult {
  status: TrainStatus;
  /** The trained adapter (best weights when restoreBestWeights); the caller owns it (disposeAdapter). */
  adapter: Adapter;
  /** Optimizer steps done. */
  steps: number;
  totalSteps: number;
  /** Loss of the last step (nats per loss token); null when no step ran. */
  trainLoss: number | null;
  /** Validation scores of the returned adapter, when there is validation data and the run was not cancelled. */
  evaluation?: LossEvaluation;
  /** The lowest validation loss seen and its step. */
  best?: LossEvaluation & { step: number };
  /** Loss tokens trained on. */
  lossTokens: number;
  /** Wall seconds of the run (summed over resumed runs). */
  trainSeconds: number;
  trainableParameters: number;
}

type RunState = Omit<
  TrainerCheckpointState,
  'version' | 'parameters' | 'method' | 'optimizerStep' | 'batcher' | 'dropoutRngState'
>;

// Separate Rng streams from one seed: the batcher uses the seed itself.
const INIT_SALT = 0x1f3d5b79;
const DROPOUT_SALT = 0x2c1b3a49;

/**
 * Supervised fine-tuning of an adapter over a frozen GPT-2: AdamW with a warmup
 * + decay schedule, gradient accumulation, global-norm clipping, periodic
 * validation with early stopping, and exact checkpoint/resume. Deterministic
 * under `seed`. One readback per optimizer step; the event loop gets a turn
 * between steps, so an abort arrives at the next step boundary.
 */
export async function train(options: TrainOptions): Promise<TrainResult> {
  const { config, method, validation, callbacks = {}, signal } = options;
  const hasValidation = (validation?.length ?? 0) > 0;
  const hp = resolveHyperparameters(options.hyperparameters ?? {}, method, hasValidation);
  checkSequences(config, options.train, 'training');
  if (validation) checkSequences(config, validation, 'validation');
  const batcher = new LengthBucketedBatcher(options.train, { batchSize: hp.batchSize, seed: hp.seed, padId: options.padId });
  const totalSteps = plannedSteps(hp, batcher.batchesPerEpoch);
  const schedule: LrSchedule = {
    learningRate: hp.learningRate,
    warmupSteps: hp.warmupSteps,
    totalSteps,
    kind: hp.schedule,
    minLrRatio: hp.minLrRatio,
  };
  validateLrSchedule(schedule);
  const trainable = createTrainable(config, options.weights, method, {
    seed: streamSeed(hp.seed, INIT_SALT),
    baseModel: options.baseModel,
  });
  const optimizer = new AdamW(trainable.params, { weightDecay: hp.weightDecay });
  const dropoutRng = new Rng(streamSeed(hp.seed, DROPOUT_SALT));
  const ctx: StepContext = { config, trainable, optimizer, maxGradNorm: hp.maxGradNorm, dropoutRng, head: options.head };
  let bestWeights: tf.Tensor[] | undefined;
  // The run's own state; a checkpoint adds the optimizer's, the batcher's and the Rng's.
  const run: RunState = {
    step: 0,
    totalSteps,
    lastLoss: null,
    lossTokens: 0,
    trainSeconds: 0,
    best: null,
    evalsWithoutImprovement: 0,
    lastEvalStep: null,
  };
  try {
    if (options.resumeFrom) {
      const saved = options.resumeFrom.state;
      if (saved.totalSteps !== totalSteps) {
        throw new InvalidArgument(
          `the checkpoint plans ${saved.totalSteps} steps, this run ${totalSteps}: resume with the same data and hyperparameters`,
        );
      }
      bestWeights = restoreCheckpoint(options.resumeFrom, trainable, optimizer, hp.restoreBestWeights && hasValidation);
      batcher.restore(saved.batcher);
      dropoutRng.setState(saved.dropoutRngState);
      const { step, lastLoss, lossTokens, trainSeconds, best, evalsWithoutImprovement, lastEvalStep } = saved;
      Object.assign(run, { step, lastLoss, lossTokens, trainSeconds, best, evalsWithoutImprovement, lastEvalStep });
      if (hp.restoreBestWeights && hasValidation && best && !bestWeights) {
        throw new InvalidArgument(
          'the checkpoint holds no best weights to restore: resume with the same `restore_best_weights` and validation data',
        );
      }
    }
    // Allocated up front (the starting weights until an evaluation improves on them), so the tensor count is flat from step 1.
    if (hp.restoreBestWeights && hasValidation) bestWeights ??= trainable.snapshot();
    await callbacks.onStart?.({
      totalSteps,
      trainableParameters: trainable.parameterCount,
      trainSequences: options.train.length,
      validationSequences: validation?.length ?? 0,
      startStep: run.step,
    });

    let lastEvaluation: LossEvaluation | undefined;
    const evaluate = async (): Promise<boolean> => {
      const result = await evaluateLoss(config, trainable.weights, validation!, {
        adapter: trainable.live,
        batchSize: hp.evalBatchSize,
        padId: options.padId,
        ...options.head,
      });
      run.lastEvalStep = run.step;
      lastEvaluation = result;
      const isBest = run.best === null || result.loss < run.best.loss;
      if (isBest) {
        run.best = { ...result, step: run.step };
        run.evalsWithoutImprovement = 0;
        if (bestWeights) {
          for (const t of bestWeights) t.dispose();
          bestWeights = trainable.snapshot();
        }
      } else {
        run.evalsWithoutImprovement++;
      }
      await callbacks.onEvaluation?.({ ...result, step: run.step, isBest });
      return hp.earlyStoppingPatience > 0 && run.evalsWithoutImprovement >= hp.earlyStoppingPatience;
    };

    const started = performance.now();
    const secondsBefore = run.trainSeconds;
    const startStep = run.step;
    const meter = new ThroughputMeter(10);
    let status: TrainStatus = 'completed';
    while (run.step < totalSteps) {
      if (signal?.aborted) {
        status = 'cancelled';
        break;
      }
      const t0 = performance.now();
      const micro = Array.from({ length: hp.gradientAccumulationSteps }, () => batcher.next());
      const tokens = stepTokens(micro);
      const lr = learningRateAt(run.step, schedule);
      const scalars = optimizerStep(ctx, micro, lr);
      let loss: number;
      let gradNorm: number;
      try {
        [loss, gradNorm] = await scalars.data();
      } finally {
        scalars.dispose();
      }
      if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
        throw new FailedPrecondition(
          `training diverged at step ${run.step + 1}: loss ${loss}, gradient norm ${gradNorm}; try a lower \`learning_rate\``,
        );
      }
      run.step++;
      run.lastLoss = loss;
      run.lossTokens += tokens.lossTokens;
      meter.add(tokens.inputTokens, (performance.now() - t0) / 1000);
      const elapsed = (performance.now() - started) / 1000;
      run.trainSeconds = secondsBefore + elapsed;
      const position = batcher.getState();
      await callbacks.onProgress?.({
        step: run.step,
        totalSteps,
        epoch: position.epoch + position.batchIndex / batcher.batchesPerEpoch,
        loss,
        learningRate: lr,
        gradNorm,
        tokensPerSecond: meter.tokensPerSecond(),
        etaSeconds: ((totalSteps - run.step) * elapsed) / (run.step - startStep),
      });
      if (hasValidation && hp.evalIntervalSteps > 0 && run.step % hp.evalIntervalSteps === 0 && (await evaluate())) {
        status = 'early_stopped';
        break;
      }
      const onInterval = hp.checkpointIntervalSteps > 0 && run.step % hp.checkpointIntervalSteps === 0;
      if (run.step < totalSteps && (onInterval || options.checkpointDue?.(run.step) === true)) {
        const checkpoint = await captureCheckpoint(
          { ...run, batcher: batcher.getState(), dropoutRngState: dropoutRng.getState() },
          trainable,
          optimizer,
          bestWeights,
        );
        await callbacks.onCheckpoint?.({ step: run.step, checkpoint, exportAdapter: () => trainable.exportAdapter() });
      }
      // A full event-loop turn (timers, I/O, worker messages), so an abort gets through before the next step.
      await new Promise<void>((resolve) => setTimeout(resolve, 0));
    }

    let evaluation: LossEvaluation | undefined;
    if (status !== 'cancelled' && hasValidation) {
      if (run.lastEvalStep !== run.step) await evaluate();
      const { step, ...best } = run.best!;
      if (bestWeights && step !== run.step) trainable.assign(bestWeights);
      evaluation = hp.restoreBestWeights ? best : lastEvaluation;
    }
    run.trainSeconds = secondsBefore + (performance.now() - started) / 1000;
    return {
      status,
      adapter: trainable.exportAdapter(),
      steps: run.step,
      totalSteps,
      trainLoss: run.lastLoss,
      evaluation,
      best: run.best ?? undefined,
      lossTokens: run.lossTokens,
      trainSeconds: run.trainSeconds,
      trainableParameters: trainable.parameterCount,
    };
  } finally {
    for (const t of bestWeights ?? []) t.dispose();
    optimizer.dispose();
    trainable.dispose();
  }
}

/** Sequences must fit the model: at most n_positions tokens, ids below vocab_size. */
function checkSequences(config: GptConfig, sequences: readonly TokenSequence[], set: string): void {
  sequences.forEach((s, i) => {
    if (s.ids.length > config.nPositions) {
      throw new InvalidArgument(
        `${set} sequence ${i} is ${s.ids.length} tokens, more than the model's n_positions ${config.nPositions}`,
      );
    }
    for (const id of s.ids) {
      if (!(id >= 0 && id < config.vocabSize)) {
        throw new InvalidArgument(
          `${set} sequence ${i} holds token id ${id}, outside the model's vocabulary [0, ${config.vocabSize})`,
        );
      }
    }
  });
}
