import { InvalidArgument } from '../../common/errors.js';
import { checkMaxSeqLen, type TokenizedExample } from './tokenize-example.js';
import type { TokenSequence } from './token-sequence.js';

/** Several examples concatenated into one sequence of at most max_seq_len tokens. */
export interface PackedSequence extends TokenSequence {
  readonly segmentIds: Int32Array;
  /** Dataset lines of the packed examples, in the order they appear. */
  readonly lines: readonly number[];
}

/**
 * Packs short examples into sequences of at most `maxSeqLen` tokens, so a
 * batch holds fewer pad tokens. Greedy best-fit decreasing: examples are taken
 * longest first (ties in input order) and each goes into the fullest sequence
 * that still has room, or starts a new one. Deterministic.
 *
 * Examples are concatenated as they are. Each already ends with EOS (unless
 * `truncate_right` cut it), so examples are separated by EOS, and their loss
 * masks are kept: an example's first token is never a loss target, so no loss
 * crosses a boundary.
 *
 * Attention does cross boundaries: with a plain causal mask, a token attends to
 * the earlier examples in its sequence (as in GPT-2 pretraining, where the
 * EOS teaches the model to start afresh). `segmentIds` (1, 2, ... per example)
 * lets a model that wants to block cross-example attention do so
 * (attend only where the segment ids match).
 */
export function packSequences(examples: readonly TokenizedExample[], maxSeqLen: number): PackedSequence[] {
  checkMaxSeqLen(maxSeqLen);
  const order = examples.map((_, i) => i);
  for (const i of order) {
    const n = examples[i].ids.length;
    if (n > maxSeqLen) {
      throw new InvalidArgument(`line ${examples[i].line}: example is ${n} tokens, longer than max_seq_len ${maxSeqLen}`);
    }
  }
  order.sort((a, b) => examples[b].ids.length - examples[a].ids.length || a - b);

  const bins: number[][] = [];
  const binLength: number[] = [];
  // Bins by tokens of room left, so best fit costs at most maxSeqLen steps, not one per bin.
  const byRoom: number[][] = Array.from({ length: maxSeqLen + 1 }, () => []);
  for (const i of order) {
    const n = examples[i].ids.length;
    let bin = -1;
    for (let room = n; room <= maxSeqLen; room++) {
      const candidates = byRoom[room];
      if (candidates.length > 0) {
        bin = candidates.pop()!;
        break;
      }
    }
    if (bin === -1) {
      bin = bins.length;
      bins.push([]);
      binLength.push(0);
    }
    bins[bin].push(i);
    binLength[bin] += n;
    byRoom[maxSeqLen - binLength[bin]].push(bin);
  }
  return bins.map((members, b) => concat(examples, members, binLength[b]));
}

function concat(examples: readonly TokenizedExample[], members: readonly number[], length: number): PackedSequence {
  const ids = new Int32Array(length);
  const lossMask = new Uint8Array(length);
  const segmentIds = new Int32Array(length);
  let offset = 0;
  members.forEach((i, k) => {
    const e = examples[i];
    ids.set(e.ids, offset);
    lossMask.set(e.lossMask, offset);
    segmentIds.fill(k + 1, offset, offset + e.ids.length);
    offset += e.ids.length;
  });
  return { ids, lossMask, segmentIds, lines: members.map((i) => examples[i].line) };
}
