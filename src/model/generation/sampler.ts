import { Rng } from '../../common/rng.js';
import { softmax } from './logits-processors.js';

/** Picks the next token from processed logits. */
export interface Sampler {
  sample(logits: Float32Array): number;
}

/** Argmax; ties go to the lowest id so greedy output is deterministic. */
export class GreedySampler implements Sampler {
  sample(logits: Float32Array): number {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }
}

/** Draws from softmax(logits) with a seeded generator: same seed, same tokens. */
export class MultinomialSampler implements Sampler {
  private readonly rng: Rng;

  constructor(seed: number) {
    this.rng = new Rng(seed);
  }

  sample(logits: Float32Array): number {
    const probs = softmax(logits);
    let u = this.rng.next();
    let last = 0;
    for (let i = 0; i < probs.length; i++) {
      if (probs[i] <= 0) continue;
      last = i;
      u -= probs[i];
      if (u < 0) return i;
    }
    return last; // rounding left a sliver of mass: take the last possible token
  }
}
