import { InvalidArgument } from '../../common/errors.js';
import { BYTE_TO_UNICODE, GPT2_BYTE_ORDER } from './bytes-to-unicode.js';
import { ByteLevelBpe, END_OF_TEXT, GPT2_SPLIT_PATTERN } from './byte-level-bpe.js';

/** Largest vocabulary the trainer builds: pair keys pack two ids into one double. */
const MAX_VOCAB = 2 ** 21;
const utf8Encoder = new TextEncoder();

interface Candidate {
  count: number;
  a: number;
  b: number;
}

/**
 * Trains a GPT-2-style byte-level BPE: ids 0..255 are the bytes (in GPT-2's
 * order, so they match GPT-2's first 256 ids), then one token per merge, then
 * `<|endoftext|>` as the last id.
 *
 * Words are cut with GPT-2's pre-tokenisation pattern and counted first; merges
 * then run on the distinct words weighted by their counts, with pair counts
 * updated incrementally for the words a merge touches. Each step merges the
 * most frequent adjacent pair; ties go to the pair with the smaller left id,
 * then the smaller right id, so training is deterministic.
 *
 * @param texts training documents (pre-tokenisation never crosses their ends).
 * @param vocabSize wanted vocabulary size in tokens, `<|endoftext|>` included
 *   (>= 257). The result is smaller only if the text runs out of pairs to merge.
 * @throws InvalidArgument when `vocabSize` is out of range.
 */
export function trainByteLevelBpe(texts: Iterable<string>, vocabSize: number): ByteLevelBpe {
  if (!Number.isInteger(vocabSize) || vocabSize < 257 || vocabSize > MAX_VOCAB) {
    throw new InvalidArgument(
      `\`vocabSize\` must be an integer in [257, ${MAX_VOCAB}] (256 bytes + merges + ${END_OF_TEXT}), got ${vocabSize}`,
    );
  }
  const { words, counts } = countWords(texts);
  const spellings: string[] = GPT2_BYTE_ORDER.map((b) => BYTE_TO_UNICODE[b]!);
  const idOf = new Map(spellings.map((s, id) => [s, id] as const));
  const pairs = new PairCounts(words, counts);
  const merges: Array<[string, string]> = [];

  while (spellings.length < vocabSize - 1) {
    const best = pairs.popBest();
    if (best === undefined) break;
    const spelling = spellings[best.a]! + spellings[best.b]!;
    // Different merges can spell the same token ("ab c", "a bc"): like Hugging
    // Face's trainer, keep both rules and reuse the id.
    let merged = idOf.get(spelling);
    if (merged === undefined) {
      merged = spellings.length;
      spellings.push(spelling);
      idOf.set(spelling, merged);
    }
    merges.push([spellings[best.a]!, spellings[best.b]!]);
    pairs.merge(best.a, best.b, merged);
  }

  const vocab = new Map(spellings.map((s, id) => [s, id] as const));
  vocab.set(END_OF_TEXT, spellings.length);
  return new ByteLevelBpe({ vocab, merges, source: 'trained BPE' });
}

/** Distinct pre-tokenised words as byte-token ids (GPT-2 byte order), with their counts. */
function countWords(texts: Iterable<string>): { words: number[][]; counts: number[] } {
  const byWord = new Map<string, number>();
  for (const text of texts) {
    const split = new RegExp(GPT2_SPLIT_PATTERN);
    for (let m = split.exec(text); m !== null; m = split.exec(text)) {
      byWord.set(m[0], (byWord.get(m[0]) ?? 0) + 1);
    }
  }
  const idOfByte = new Int32Array(256);
  GPT2_BYTE_ORDER.forEach((b, id) => (idOfByte[b] = id));
  const words: number[][] = [];
  const counts: number[] = [];
  for (const [word, count] of byWord) {
    words.push(Array.from(utf8Encoder.encode(word), (b) => idOfByte[b]!));
    counts.push(count);
  }
  return { words, counts };
}

/** Pair counts over the weighted words, the words each pair occurs in, and a max-heap of candidates. */
class PairCounts {
  private readonly count = new Map<number, number>();
  private readonly where = new Map<number, Set<number>>();
  private readonly heap = new CandidateHeap();

  constructor(
    private readonly words: number[][],
    private readonly wordCounts: number[],
  ) {
    words.forEach((word, w) => this.addWord(word, w, wordCounts[w]!, undefined));
    for (const [key, count] of this.count) this.heap.push({ count, a: Math.floor(key / MAX_VOCAB), b: key % MAX_VOCAB });
  }

  /** The most frequent pair, or undefined when no pair is left. */
  popBest(): Candidate | undefined {
    for (let top = this.heap.pop(); top !== undefined; top = this.heap.pop()) {
      const current = this.count.get(top.a * MAX_VOCAB + top.b) ?? 0;
      if (current === top.count) return top;
      // Counts only fall after a candidate is queued (rises are queued anew), so
      // a stale entry is re-queued with its lower count.
      if (current > 0) this.heap.push({ ...top, count: current });
    }
    return undefined;
  }

  /** Replaces every `a b` (left to right, non-overlapping) in every word by `merged`. */
  merge(a: number, b: number, merged: number): void {
    const key = a * MAX_VOCAB + b;
    const touched = this.where.get(key) ?? new Set<number>();
    this.where.delete(key);
    const risen = new Set<number>();
    for (const w of touched) {
      const word = this.words[w]!;
      const next: number[] = [];
      let changed = false;
      for (let i = 0; i < word.length; i++) {
        if (i + 1 < word.length && word[i] === a && word[i + 1] === b) {
          next.push(merged);
          i++;
          changed = true;
        } else {
          next.push(word[i]!);
        }
      }
      // `where` is not pruned when a word loses a pair, so some words hold none.
      if (!changed) continue;
      this.addWord(word, w, -this.wordCounts[w]!, undefined);
      this.words[w] = next;
      this.addWord(next, w, this.wordCounts[w]!, merged);
      for (let i = 0; i + 1 < next.length; i++) {
        if (next[i] === merged || next[i + 1] === merged) risen.add(next[i]! * MAX_VOCAB + next[i + 1]!);
      }
    }
    this.count.delete(key);
    for (const k of risen) {
      const count = this.count.get(k) ?? 0;
      if (count > 0) this.heap.push({ count, a: Math.floor(k / MAX_VOCAB), b: k % MAX_VOCAB });
    }
  }

  /** Adds `weight` to the count of every adjacent pair of `word`; indexes pairs holding `indexFor`. */
  private addWord(word: number[], w: number, weight: number, indexFor: number | undefined): void {
    for (let i = 0; i + 1 < word.length; i++) {
      const key = word[i]! * MAX_VOCAB + word[i + 1]!;
      const count = (this.count.get(key) ?? 0) + weight;
      if (count === 0) this.count.delete(key);
      else this.count.set(key, count);
      if (weight > 0 && (indexFor === undefined || word[i] === indexFor || word[i + 1] === indexFor)) {
        let set = this.where.get(key);
        if (set === undefined) this.where.set(key, (set = new Set()));
        set.add(w);
      }
    }
  }
}

/** Max-heap on count; ties: smaller `a`, then smaller `b` first. */
class CandidateHeap {
  private readonly items: Candidate[] = [];

  private static before(x: Candidate, y: Candidate): boolean {
    if (x.count !== y.count) return x.count > y.count;
    return x.a !== y.a ? x.a < y.a : x.b < y.b;
  }

  push(item: Candidate): void {
    const a = this.items;
    let i = a.length;
    a.push(item);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!CandidateHeap.before(item, a[parent]!)) break;
      a[i] = a[parent]!;
      i = parent;
    }
    a[i] = item;
  }

  pop(): Candidate | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (top === undefined || last === undefined || a.length === 0) return top;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= a.length) break;
      if (child + 1 < a.length && CandidateHeap.before(a[child + 1]!, a[child]!)) child++;
      if (!CandidateHeap.before(a[child]!, last)) break;
      a[i] = a[child]!;
      i = child;
    }
    a[i] = last;
    return top;
  }
}
