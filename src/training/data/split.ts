import { InvalidArgument } from '../../common/errors.js';
import { Rng } from '../../common/rng.js';

/** A dataset cut into the part trained on and the part evaluated on. */
export interface TrainValidationSplit<T> {
  train: T[];
  validation: T[];
}

/** Where the validation set comes from: a separate dataset, or a share of the training set. */
export interface ValidationSource<T> {
  /** A separate validation set, used as is. */
  validation?: readonly T[];
  /** Share of the training examples held out, in [0, 1); 0 or absent holds out none. */
  validationRatio?: number;
  /** Seed for choosing the held-out examples. */
  seed: number;
}

// Decorrelates the split from the batcher's shuffles when both use the run's seed.
const SPLIT_SALT = 0x5b1f7e57;

/**
 * Holds out `round(ratio * n)` examples (at least 1 when ratio > 0, and at
 * least 1 left to train on) chosen by a seeded shuffle. Deterministic: the
 * same items, ratio and seed give the same split. Stable: both parts keep the
 * input order.
 */
export function splitByRatio<T>(items: readonly T[], ratio: number, seed: number): TrainValidationSplit<T> {
  if (!(ratio >= 0 && ratio < 1)) {
    throw new InvalidArgument(`\`validation_split\` must be >= 0 and < 1, got ${ratio}`);
  }
  if (ratio === 0) return { train: [...items], validation: [] };
  const n = items.length;
  if (n < 2) {
    throw new InvalidArgument(`\`validation_split\` ${ratio} needs at least 2 examples, got ${n}`);
  }
  const held = Math.min(n - 1, Math.max(1, Math.round(ratio * n)));
  const rng = new Rng((seed ^ SPLIT_SALT) >>> 0);
  const order = rng.shuffle(items.map((_, i) => i));
  const isValidation = new Uint8Array(n);
  for (let k = 0; k < held; k++) isValidation[order[k]] = 1;
  const split: TrainValidationSplit<T> = { train: [], validation: [] };
  items.forEach((item, i) => (isValidation[i] ? split.validation : split.train).push(item));
  return split;
}

/**
 * The validation set for a run: the separate set when one is given, else a
 * ratio split of the training set. Giving both is an InvalidArgument, since
 * the caller's intent is unclear.
 */
export function resolveValidation<T>(train: readonly T[], source: ValidationSource<T>): TrainValidationSplit<T> {
  const ratio = source.validationRatio ?? 0;
  if (source.validation !== undefined) {
    if (ratio !== 0) {
      throw new InvalidArgument(
        `give either a validation dataset or \`validation_split\`, not both (got validation_split ${ratio})`,
      );
    }
    return { train: [...train], validation: [...source.validation] };
  }
  return splitByRatio(train, ratio, source.seed);
}
