/**
 * Token-weighted loss and perplexity, accumulated over batches of plain
 * numbers (the caller reads losses back from tensors once per batch).
 */
import { InvalidArgument } from '../common/errors.js';

/** The sufficient statistics of mean loss; they add up across batches and workers. */
export interface LossTotals {
  /** Sum of per-token negative log-likelihoods, in nats. */
  nllSum: number;
  /** Number of tokens scored (masked tokens excluded). */
  tokenCount: number;
}

/** Perplexity of a mean per-token loss in nats: `exp(meanLoss)`. */
export function perplexityFromLoss(meanLossNats: number): number {
  return Math.exp(meanLossNats);
}

function checkCount(value: number, field: string): void {
  if (!Number.isInteger(value) || value < 0) {
    throw new InvalidArgument(`\`${field}\` must be an integer >= 0, got ${value}`);
  }
}

function checkNll(value: number, field: string): void {
  // +Infinity is allowed: a token given probability 0 has infinite loss.
  if (Number.isNaN(value) || value < 0) throw new InvalidArgument(`\`${field}\` must be >= 0, got ${value}`);
}

/**
 * Accumulates the summed token NLL and token count across batches, so the
 * mean is weighted by tokens, not by batches: a batch of 10 tokens counts
 * 10 times as much as a batch of 1. Sums use Neumaier compensation so that
 * millions of tokens lose no precision.
 */
export class LossAccumulator {
  private sum = 0;
  private compensation = 0;
  private count = 0;

  /** Adds a batch given its summed NLL (nats) and its token count. */
  add(nllSum: number, tokenCount: number): this {
    checkNll(nllSum, 'nllSum');
    checkCount(tokenCount, 'tokenCount');
    if (tokenCount === 0 && nllSum !== 0) {
      throw new InvalidArgument(`\`nllSum\` must be 0 when \`tokenCount\` is 0, got ${nllSum}`);
    }
    this.addToSum(nllSum);
    this.count += tokenCount;
    return this;
  }

  /**
   * Adds per-token NLLs (nats); where `mask` is given, only tokens whose mask
   * value is non-zero count (padding, prompt tokens under completion-only loss).
   */
  addTokens(nlls: ArrayLike<number>, mask?: ArrayLike<number>): this {
    if (mask !== undefined && mask.length !== nlls.length) {
      throw new InvalidArgument(`\`mask\` must have ${nlls.length} entries like \`nlls\`, got ${mask.length}`);
    }
    for (let i = 0; i < nlls.length; i++) {
      if (mask !== undefined && mask[i] === 0) continue;
      checkNll(nlls[i], `nlls[${i}]`);
      this.addToSum(nlls[i]);
      this.count++;
    }
    return this;
  }

  /** Adds another accumulator's totals (e.g. from another worker). */
  merge(other: LossAccumulator | LossTotals): this {
    const totals = other instanceof LossAccumulator ? other.totals() : other;
    return this.add(totals.nllSum, totals.tokenCount);
  }

  /** Tokens accumulated so far. */
  get tokenCount(): number {
    return this.count;
  }

  /** The totals, to persist or send between threads. */
  totals(): LossTotals {
    return { nllSum: this.sum + this.compensation, tokenCount: this.count };
  }

  /** Mean NLL per token in nats; NaN when no token was added (0/0). */
  meanLoss(): number {
    return this.count === 0 ? Number.NaN : (this.sum + this.compensation) / this.count;
  }

  /** `exp(meanLoss())`; NaN when no token was added. */
  perplexity(): number {
    return perplexityFromLoss(this.meanLoss());
  }

  private addToSum(x: number): void {
    const t = this.sum + x;
    if (!Number.isFinite(t)) {
      this.sum = t;
      this.compensation = 0;
      return;
    }
    this.compensation += Math.abs(this.sum) >= Math.abs(x) ? this.sum - t + x : x - t + this.sum;
    this.sum = t;
  }
}
