import { Rng } from '../../common/rng.js';

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

/**
 * exp(logit - max) of the row being sampled. Sampling is synchronous, so one
 * buffer serves every sampler on the thread: no 8-bytes-per-token-id
 * allocation per decode step.
 */
let scratch = new Float64Array(0);

/** Draws from softmax(logits) with a seeded generator: same seed, same tokens. */
export class MultinomialSampler implements Sampler {
  private readonly rng: Rng;

  constructor(seed: number) {
    this.rng = new Rng(seed);
  }

  sample(logits: Float32Array): number {
    // softmax() (logits-processors.ts) and an inverse-CDF walk, fused: the same
    // float64 operations in the same order, so the same token for the same
    // seed, but a probability is only divided out for the ids the walk visits.
    const n = logits.length;
    if (scratch.length < n) scratch = new Float64Array(n);
    const e = scratch;
    let max = -Infinity;
    for (let i = 0; i < n; i++) if (logits[i] > max) max = logits[i];
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const v = Math.exp(logits[i] - max);
      e[i] = v;
      sum += v;
    }
    let u = this.rng.next();
    let last = 0;
    for (let i = 0; i < n; i++) {
      const p = e[i] / sum;
      if (p <= 0) continue;
      last = i;
      u -= p;
      if (u < 0) return i;
    }
    return last; // rounding left a sliver of mass: take the last possible token
  }
}
