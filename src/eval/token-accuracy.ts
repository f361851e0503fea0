/**
 * Next-token accuracy under teacher forcing, accumulated over batches of
 * plain numbers.
 */
import { InvalidArgument } from '../common/errors.js';

/** The sufficient statistics of token accuracy; they add up across batches. */
export interface AccuracyTotals {
  /** Tokens whose argmax prediction equals the label. */
  correct: number;
  /** Tokens scored (ignored labels excluded). */
  tokenCount: number;
}

/**
 * Label value that marks a position as not scored, as in Hugging Face
 * (`ignore_index=-100` of PyTorch's cross-entropy).
 */
export const IGNORE_INDEX = -100;

function checkCount(value: number, field: string): void {
  if (!Number.isInteger(value) || value < 0) {
    throw new InvalidArgument(`\`${field}\` must be an integer >= 0, got ${value}`);
  }
}

/**
 * Accumulates correct argmax predictions and scored tokens across batches;
 * accuracy is token-weighted (correct tokens / scored tokens over everything
 * added), not a mean of per-batch accuracies.
 */
export class TokenAccuracyAccumulator {
  private correctCount = 0;
  private count = 0;

  /** Adds a batch given its number of correct tokens and of scored tokens. */
  add(correct: number, tokenCount: number): this {
    checkCount(correct, 'correct');
    checkCount(tokenCount, 'tokenCount');
    if (correct > tokenCount) {
      throw new InvalidArgument(`\`correct\` must be <= tokenCount (${tokenCount}), got ${correct}`);
    }
    this.correctCount += correct;
    this.count += tokenCount;
    return this;
  }

  /**
   * Adds argmax token ids against label ids, position by position; positions
   * whose label is `ignoreIndex` (default -100) are not scored.
   */
  addPredictions(predicted: ArrayLike<number>, labels: ArrayLike<number>, ignoreIndex = IGNORE_INDEX): this {
    if (predicted.length !== labels.length) {
      throw new InvalidArgument(`\`labels\` must have ${predicted.length} entries like \`predicted\`, got ${labels.length}`);
    }
    let correct = 0;
    let scored = 0;
    for (let i = 0; i < labels.length; i++) {
      if (labels[i] === ignoreIndex) continue;
      scored++;
      if (predicted[i] === labels[i]) correct++;
    }
    return this.add(correct, scored);
  }

  /** Adds another accumulator's totals (e.g. from another worker). */
  merge(other: TokenAccuracyAccumulator | AccuracyTotals): this {
    const totals = other instanceof TokenAccuracyAccumulator ? other.totals() : other;
    return this.add(totals.correct, totals.tokenCount);
  }

  /** Tokens scored so far. */
  get tokenCount(): number {
    return this.count;
  }

  /** The totals, to persist or send between threads. */
  totals(): AccuracyTotals {
    return { correct: this.correctCount, tokenCount: this.count };
  }

  /** Correct / scored tokens, 0..1; NaN when no token was scored (0/0). */
  accuracy(): number {
    return this.count === 0 ? Number.NaN : this.correctCount / this.count;
  }
}
