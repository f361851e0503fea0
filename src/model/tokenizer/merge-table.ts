/**
 * The ranked merge rules of a BPE model and their application to one word.
 *
 * Pairs of token ids are kept in an open-addressing hash table over typed
 * arrays: a `Map` keyed by `a * vocabSize + b` would leave the small-integer
 * range for GPT-2's 50k vocabulary and cost a boxed number per lookup.
 */

const EMPTY = -1;
const NO_RANK = 0x7fffffff;
/** Words up to this many symbols merge by rescanning an array; longer ones use a heap. */
const SHORT_WORD = 64;
/** Heap keys pack (rank, position) so that the lowest rank, then the leftmost pair, pops first. */
const POSITION_SPAN = 2 ** 32;

/** Pair of token ids -> (rank, merged id). Lower rank = learned earlier = applied first. */
export class MergeTable {
  private readonly left: Int32Array;
  private readonly right: Int32Array;
  private readonly ranks: Int32Array;
  private readonly mask: number;
  private readonly mergedByRank: Int32Array;

  /** @param capacity the number of merges that will be added (their ranks are 0..capacity-1). */
  constructor(capacity: number) {
    let size = 16;
    while (size < capacity * 2) size *= 2;
    this.left = new Int32Array(size).fill(EMPTY);
    this.right = new Int32Array(size);
    this.ranks = new Int32Array(size);
    this.mask = size - 1;
    this.mergedByRank = new Int32Array(Math.max(capacity, 1));
  }

  private slot(a: number, b: number): number {
    let i = (Math.imul(a, 0x9e3779b1) ^ Math.imul(b + 1, 0x85ebca77)) & this.mask;
    while (this.left[i] !== EMPTY && (this.left[i] !== a || this.right[i] !== b)) {
      i = (i + 1) & this.mask;
    }
    return i;
  }

  /**
   * Adds the rule `a b -> merged` with the given rank (its line in the merges
   * list). A pair listed twice keeps its last rank, as GPT-2's `dict(zip(...))`
   * and Hugging Face's `tokenizers` both do.
   */
  add(a: number, b: number, merged: number, rank: number): void {
    const i = this.slot(a, b);
    this.left[i] = a;
    this.right[i] = b;
    this.ranks[i] = rank;
    this.mergedByRank[rank] = merged;
  }

  /** Rank of the pair, or `NO_RANK` (2^31 - 1) when the pair never merges. */
  rank(a: number, b: number): number {
    const i = this.slot(a, b);
    return this.left[i] === EMPTY ? NO_RANK : this.ranks[i]!;
  }

  /**
   * Applies the merges to one word's symbols (byte token ids) and returns the
   * resulting token ids. Like tiktoken and Hugging Face, it repeatedly merges
   * the lowest-ranked adjacent pair, the leftmost one on ties.
   */
  apply(symbols: number[]): number[] {
    if (symbols.length < 2) return symbols;
    return symbols.length <= SHORT_WORD ? this.applyShort(symbols) : this.applyLong(symbols);
  }

  /** O(n^2) but allocation-free beyond two small arrays: fastest for ordinary words. */
  private applyShort(symbols: number[]): number[] {
    const syms = symbols;
    const pairRanks: number[] = new Array<number>(syms.length - 1);
    for (let i = 0; i < syms.length - 1; i++) pairRanks[i] = this.rank(syms[i]!, syms[i + 1]!);
    for (;;) {
      let best = NO_RANK;
      let at = -1;
      for (let i = 0; i < pairRanks.length; i++) {
        if (pairRanks[i]! < best) {
          best = pairRanks[i]!;
          at = i;
        }
      }
      if (at < 0) return syms;
      syms[at] = this.mergedByRank[best]!;
      syms.splice(at + 1, 1);
      pairRanks.splice(at, 1);
      if (at > 0) pairRanks[at - 1] = this.rank(syms[at - 1]!, syms[at]!);
      if (at < syms.length - 1) pairRanks[at] = this.rank(syms[at]!, syms[at + 1]!);
    }
  }

  /** O(n log n) for long words (e.g. a CJK paragraph without spaces is one word). */
  private applyLong(symbols: number[]): number[] {
    const n = symbols.length;
    const sym = Int32Array.from(symbols);
    const prev = new Int32Array(n);
    const next = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    const heap = new MinHeap();
    for (let i = 0; i < n - 1; i++) {
      const r = this.rank(sym[i]!, sym[i + 1]!);
      if (r !== NO_RANK) heap.push(r * POSITION_SPAN + i);
    }
    while (heap.size > 0) {
      const key = heap.pop();
      const r = Math.floor(key / POSITION_SPAN);
      const pos = key - r * POSITION_SPAN;
      const nx = next[pos]!;
      // Entries go stale when a neighbour merged first; ranks identify pairs, so
      // an unchanged rank at this position means the pair is still there.
      if (sym[pos] === EMPTY || nx < 0 || this.rank(sym[pos]!, sym[nx]!) !== r) continue;
      sym[pos] = this.mergedByRank[r]!;
      sym[nx] = EMPTY;
      const after = next[nx]!;
      next[pos] = after;
      if (after >= 0) prev[after] = pos;
      const before = prev[pos]!;
      if (before >= 0) {
        const rb = this.rank(sym[before]!, sym[pos]!);
        if (rb !== NO_RANK) heap.push(rb * POSITION_SPAN + before);
      }
      if (after >= 0) {
        const ra = this.rank(sym[pos]!, sym[after]!);
        if (ra !== NO_RANK) heap.push(ra * POSITION_SPAN + pos);
      }
    }
    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]!) out.push(sym[i]!);
    return out;
  }
}

/** A binary min-heap of numbers. */
class MinHeap {
  private readonly items: number[] = [];

  get size(): number {
    return this.items.length;
  }

  push(x: number): void {
    const a = this.items;
    let i = a.length;
    a.push(x);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (a[parent]! <= x) break;
      a[i] = a[parent]!;
      i = parent;
    }
    a[i] = x;
  }

  pop(): number {
    const a = this.items;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length === 0) return top;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= a.length) break;
      if (child + 1 < a.length && a[child + 1]! < a[child]!) child++;
      if (a[child]! >= last) break;
      a[i] = a[child]!;
      i = child;
    }
    a[i] = last;
    return top;
  }
}
