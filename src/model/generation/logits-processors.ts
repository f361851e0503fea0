/**
 * Logits processors: each rewrites one row of logits in place before
 * sampling. They run on the host over a Float32Array of vocabulary size (the
 * decode step reads logits back once anyway), in the order HF/TGI apply them:
 * repetition penalty (then OpenAI's presence and frequency penalties),
 * temperature, top-k, top-p.
 */
export interface LogitsProcessor {
  /** Rewrites `logits` in place; `context` holds every id so far (prompt and generated). */
  process(logits: Float32Array, context: readonly number[]): void;
}

/** CTRL-style repetition penalty (as in HF): divides positive, multiplies negative logits of seen ids. */
export class RepetitionPenaltyProcessor implements LogitsProcessor {
  constructor(readonly penalty: number) {}

  process(logits: Float32Array, context: readonly number[]): void {
    const seen = new Set(context);
    for (const id of seen) {
      const v = logits[id];
      logits[id] = v > 0 ? v / this.penalty : v * this.penalty;
    }
  }
}

/** How many times each id occurs in `context` after its first `skip` ids. */
function counts(context: readonly number[], skip: number): Map<number, number> {
  const out = new Map<number, number>();
  for (let i = skip; i < context.length; i++) out.set(context[i], (out.get(context[i]) ?? 0) + 1);
  return out;
}

/**
 * OpenAI's presence penalty: `logit[j] -= penalty` for every token j generated
 * at least once. Only generated tokens count (the first `promptLength` ids of
 * the context are the prompt), as in OpenAI's definition; negative values
 * encourage repeats.
 */
export class PresencePenaltyProcessor implements LogitsProcessor {
  constructor(
    readonly penalty: number,
    /** Tokens of the prompt at the start of every context. */
    readonly promptLength: number,
  ) {}

  process(logits: Float32Array, context: readonly number[]): void {
    for (const id of counts(context, this.promptLength).keys()) logits[id] -= this.penalty;
  }
}

/**
 * OpenAI's frequency penalty: `logit[j] -= count[j] * penalty`, count[j] the
 * times token j was generated so far (prompt tokens do not count).
 */
export class FrequencyPenaltyProcessor implements LogitsProcessor {
  constructor(
    readonly penalty: number,
    /** Tokens of the prompt at the start of every context. */
    readonly promptLength: number,
  ) {}

  process(logits: Float32Array, context: readonly number[]): void {
    for (const [id, n] of counts(context, this.promptLength)) logits[id] -= n * this.penalty;
  }
}

/** Divides logits by the temperature (> 0; 0 means greedy and is handled by the sampler). */
export class TemperatureProcessor implements LogitsProcessor {
  constructor(readonly temperature: number) {}

  process(logits: Float32Array): void {
    const inv = 1 / this.temperature;
    for (let i = 0; i < logits.length; i++) logits[i] *= inv;
  }
}

/** Keeps the k largest logits (ties at the k-th value kept), the rest become -Infinity. */
export class TopKProcessor implements LogitsProcessor {
  constructor(readonly k: number) {}

  process(logits: Float32Array): void {
    if (this.k <= 0 || this.k >= logits.length) return;
    const kth = kthLargest(logits, this.k);
    for (let i = 0; i < logits.length; i++) if (logits[i] < kth) logits[i] = -Infinity;
  }
}

/**
 * Nucleus sampling: keeps the smallest set of most likely tokens whose
 * probability mass reaches p (always at least one).
 */
export class TopPProcessor implements LogitsProcessor {
  constructor(readonly p: number) {}

  process(logits: Float32Array): void {
    if (this.p >= 1) return;
    const probs = softmax(logits);
    const order = Array.from(probs.keys()).filter((i) => probs[i] > 0);
    order.sort((a, b) => probs[b] - probs[a] || a - b);
    let mass = 0;
    let keep = 0;
    while (keep < order.length) {
      mass += probs[order[keep]];
      keep++;
      if (mass >= this.p) break;
    }
    const kept = new Set(order.slice(0, keep));
    for (let i = 0; i < logits.length; i++) if (!kept.has(i)) logits[i] = -Infinity;
  }
}

/** Softmax of a row as float64 probabilities. */
export function softmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of logits) if (v > max) max = v;
  const out = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    const e = Math.exp(logits[i] - max);
    out[i] = e;
    sum += e;
  }
  for (let i = 0; i < out.length; i++) out[i] /= sum;
  return out;
}

/** log softmax(logits)[id], computed stably. */
export function logSoftmaxAt(logits: Float32Array, id: number): number {
  let max = -Infinity;
  for (const v of logits) if (v > max) max = v;
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  return logits[id] - max - Math.log(sum);
}

function kthLargest(values: Float32Array, k: number): number {
  // A bounded min-heap of size k: O(V log k), far cheaper than sorting 50k logits.
  const heap: number[] = [];
  const up = (i: number) => {
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (heap[p] <= heap[i]) break;
      [heap[p], heap[i]] = [heap[i], heap[p]];
      i = p;
    }
  };
  const down = (i: number) => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && heap[l] < heap[m]) m = l;
      if (r < heap.length && heap[r] < heap[m]) m = r;
      if (m === i) return;
      [heap[m], heap[i]] = [heap[i], heap[m]];
      i = m;
    }
  };
  for (const v of values) {
    if (heap.length < k) {
      heap.push(v);
      up(heap.length - 1);
    } else if (v > heap[0]) {
      heap[0] = v;
      down(0);
    }
  }
  return heap[0];
}
