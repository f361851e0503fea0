import { InvalidArgument } from '../common/errors.js';

/** How the learning rate decays after warmup (Hugging Face's `lr_scheduler_type` names). */
export type LrScheduleKind = 'cosine' | 'linear' | 'constant';

/** The accepted {@link LrScheduleKind} values. */
export const LR_SCHEDULES: readonly LrScheduleKind[] = ['cosine', 'linear', 'constant'];

/** A learning-rate schedule over a run of optimizer steps. */
export interface LrSchedule {
  /** Peak learning rate, reached at the end of warmup. */
  learningRate: number;
  /** Optimizer steps of linear warmup (0 = none). */
  warmupSteps: number;
  /** Optimizer steps in the whole run. */
  totalSteps: number;
  kind: LrScheduleKind;
  /** The decay ends at `minLrRatio * learningRate` (default 0). Ignored by `constant`. */
  minLrRatio?: number;
}

/**
 * The learning rate of optimizer step `step` (0-based: the number of steps
 * already taken). A pure function of the step, so a resumed run needs no
 * scheduler state.
 *
 * Warmup rises linearly as `(step + 1) / warmupSteps`, so the first step already
 * moves the weights (Hugging Face's `step / warmupSteps` spends it at lr 0) and
 * step `warmupSteps - 1` runs at the peak. After warmup, with
 * `progress = (step - warmupSteps) / (totalSteps - warmupSteps)` in [0, 1):
 * cosine `min + (1 - min) * (1 + cos(pi * progress)) / 2`, linear
 * `min + (1 - min) * (1 - progress)`, constant 1 (all times the peak), as in
 * Hugging Face's `get_*_schedule_with_warmup`.
 */
export function learningRateAt(step: number, schedule: LrSchedule): number {
  const { learningRate, warmupSteps, totalSteps, kind } = schedule;
  const min = schedule.minLrRatio ?? 0;
  if (step < warmupSteps) return (learningRate * (step + 1)) / warmupSteps;
  if (kind === 'constant') return learningRate;
  const progress = Math.min(1, (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps));
  const decay = kind === 'cosine' ? 0.5 * (1 + Math.cos(Math.PI * progress)) : 1 - progress;
  return learningRate * (min + (1 - min) * decay);
}

/** Checks a schedule's fields, naming the first bad one. */
export function validateLrSchedule(schedule: LrSchedule): void {
  const { learningRate, warmupSteps, totalSteps, kind } = schedule;
  const min = schedule.minLrRatio ?? 0;
  if (!(learningRate > 0) || !Number.isFinite(learningRate)) {
    throw new InvalidArgument(`\`learning_rate\` must be > 0, got ${learningRate}`);
  }
  if (!Number.isInteger(warmupSteps) || warmupSteps < 0) {
    throw new InvalidArgument(`\`warmup_steps\` must be a non-negative integer, got ${warmupSteps}`);
  }
  if (!Number.isInteger(totalSteps) || totalSteps <= 0) {
    throw new InvalidArgument(`total steps must be a positive integer, got ${totalSteps}`);
  }
  if (!LR_SCHEDULES.includes(kind)) {
    throw new InvalidArgument(`\`lr_scheduler\` must be one of ${LR_SCHEDULES.join(', ')}, got ${JSON.stringify(kind)}`);
  }
  if (!(min >= 0 && min <= 1)) {
    throw new InvalidArgument(`\`min_lr_ratio\` must be in [0, 1], got ${min}`);
  }
}
