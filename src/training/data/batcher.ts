import { InvalidArgument } from '../../common/errors.js';
import { Rng } from '../../common/rng.js';
import { collate, type Batch } from './collate.js';
import type { TokenSequence } from './token-sequence.js';

/** How the batcher groups sequences. */
export interface BatcherOptions {
  /** Sequences per batch; the last batch of an epoch may hold fewer. */
  batchSize: number;
  /** Seed for the per-epoch shuffles. */
  seed: number;
  /** Token id used for padding (the tokenizer's EOS for GPT-2). */
  padId: number;
  /**
   * Bucketing window, in batches (default 50): each epoch's shuffled order is
   * cut into windows of this many batches, each sorted by length. Larger means
   * less padding but less random batches; 1 turns bucketing off.
   */
  bucketWindowBatches?: number;
}

/**
 * Where a batcher is, as plain JSON for a checkpoint. `rngState` is the Rng
 * state at the start of `epoch`, from which that epoch's order is rebuilt.
 */
export interface BatcherState {
  /** Epochs completed (0-based index of the current epoch). */
  epoch: number;
  /** Batches already taken in the current epoch, in [0, batchesPerEpoch). */
  batchIndex: number;
  rngState: number;
}

/** Default bucketing window, in batches. */
export const DEFAULT_BUCKET_WINDOW_BATCHES = 50;

interface EpochPlan {
  batches: number[][];
  /** The Rng state after planning: the next epoch's start state. */
  endState: number;
}

/**
 * Length-bucketed batches for training, endlessly, epoch after epoch. Each
 * epoch: shuffle all sequences with the seeded Rng, cut the order into windows
 * of `bucketWindowBatches` batches, sort each window by length (so a batch
 * holds sequences of similar length and little padding), cut into batches of
 * `batchSize`, then shuffle the order of the batches. Every sequence appears
 * exactly once per epoch.
 *
 * Deterministic under a seed, and resumable: `getState()` after k batches,
 * passed to `restore()` on a batcher over the same sequences and options,
 * yields exactly the batches the original yields after its k-th.
 */
export class LengthBucketedBatcher {
  /** Batches in one epoch: ceil(sequences / batchSize). */
  readonly batchesPerEpoch: number;
  private readonly batchSize: number;
  private readonly padId: number;
  private readonly windowBatches: number;
  private epoch = 0;
  private batchIndex = 0;
  private epochStartState: number;
  private plan: EpochPlan | null = null;

  constructor(
    private readonly sequences: readonly TokenSequence[],
    options: BatcherOptions,
  ) {
    if (sequences.length === 0) throw new InvalidArgument('the dataset has no examples to batch');
    this.batchSize = positiveInteger(options.batchSize, 'batch_size');
    this.windowBatches = positiveInteger(
      options.bucketWindowBatches ?? DEFAULT_BUCKET_WINDOW_BATCHES,
      'bucket_window_batches',
    );
    this.padId = options.padId;
    this.batchesPerEpoch = Math.ceil(sequences.length / this.batchSize);
    this.epochStartState = new Rng(options.seed).getState();
  }

  /** The next batch; after an epoch's last batch the next epoch begins. */
  next(): Batch {
    const plan = this.currentPlan();
    const batch = collate(this.sequences, plan.batches[this.batchIndex], this.padId);
    this.batchIndex++;
    if (this.batchIndex === this.batchesPerEpoch) {
      this.epoch++;
      this.batchIndex = 0;
      this.epochStartState = plan.endState;
      this.plan = null;
    }
    return batch;
  }

  /** The batches left in the current epoch (all of them at its start), taken lazily. */
  *epochBatches(): Generator<Batch> {
    const epoch = this.epoch;
    while (this.epoch === epoch) yield this.next();
  }

  /** The position, to store in a checkpoint. */
  getState(): BatcherState {
    return { epoch: this.epoch, batchIndex: this.batchIndex, rngState: this.epochStartState };
  }

  /** Moves to a position from {@link getState}; the batch after it comes next. */
  restore(state: BatcherState): void {
    const { epoch, batchIndex, rngState } = state;
    if (!Number.isInteger(epoch) || epoch < 0) {
      throw new InvalidArgument(`\`batcher.epoch\` must be a non-negative integer, got ${epoch}`);
    }
    if (!Number.isInteger(batchIndex) || batchIndex < 0 || batchIndex >= this.batchesPerEpoch) {
      throw new InvalidArgument(
        `\`batcher.batchIndex\` must be an integer in [0, ${this.batchesPerEpoch}), got ${batchIndex}`,
      );
    }
    if (!Number.isInteger(rngState) || rngState < 0 || rngState > 0xffffffff) {
      throw new InvalidArgument(`\`batcher.rngState\` must be a uint32, got ${rngState}`);
    }
    this.epoch = epoch;
    this.batchIndex = batchIndex;
    this.epochStartState = rngState;
    this.plan = null;
  }

  private currentPlan(): EpochPlan {
    this.plan ??= this.planEpoch(this.epochStartState);
    return this.plan;
  }

  private planEpoch(startState: number): EpochPlan {
    const rng = new Rng(0);
    rng.setState(startState);
    const order = rng.shuffle(this.sequences.map((_, i) => i));
    const length = (i: number): number => this.sequences[i].ids.length;
    const window = this.windowBatches * this.batchSize;
    const batches: number[][] = [];
    for (let w = 0; w < order.length; w += window) {
      // Array.prototype.sort is stable: equal lengths keep their shuffled order.
      const sorted = order.slice(w, w + window).sort((a, b) => length(a) - length(b));
      for (let b = 0; b < sorted.length; b += this.batchSize) batches.push(sorted.slice(b, b + this.batchSize));
    }
    rng.shuffle(batches);
    return { batches, endState: rng.getState() };
  }
}

/**
 * Batches for evaluation: every sequence once, in order of length (least
 * padding), no shuffling. The last batch may hold fewer than `batchSize`.
 */
export function* evaluationBatches(
  sequences: readonly TokenSequence[],
  batchSize: number,
  padId: number,
): Generator<Batch> {
  positiveInteger(batchSize, 'batch_size');
  const order = sequences.map((_, i) => i).sort((a, b) => sequences[a].ids.length - sequences[b].ids.length);
  for (let b = 0; b < order.length; b += batchSize) yield collate(sequences, order.slice(b, b + batchSize), padId);
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isInteger(value) || value <= 0) {
    throw new InvalidArgument(`\`${name}\` must be a positive integer, got ${value}`);
  }
  return value;
}
