import type { TokenSequence } from './token-sequence.js';

/**
 * A padded batch for next-token prediction, row-major `[size, seqLen]`.
 * Row `b` holds sequence `s` right-padded to `seqLen` with `padId`; at position
 * `t < s.ids.length`: `inputIds = s.ids[t]`, `targets = s.ids[t + 1]` (or
 * `padId` at the last token), `lossWeights = s.lossMask[t + 1]` (0 at the last
 * token), `attentionMask = 1`. Pad positions have attention 0, loss weight 0,
 * and `padId` as input and target.
 */
export interface Batch {
  /** Rows (sequences). */
  size: number;
  /** Columns, in tokens: the longest sequence in this batch. */
  seqLen: number;
  /** Token ids fed to the model, `[size * seqLen]`. */
  inputIds: Int32Array;
  /** The next token at each position, `[size * seqLen]`. */
  targets: Int32Array;
  /** 1 where the prediction counts in the loss, else 0, `[size * seqLen]`. */
  lossWeights: Float32Array;
  /** 1 on real tokens, 0 on padding, `[size * seqLen]`. */
  attentionMask: Uint8Array;
  /**
   * Which example each token belongs to (1, 2, ... within a packed row; 1 for
   * an unpacked row; 0 on padding), `[size * seqLen]`. A model may restrict
   * attention to equal, non-zero segment ids; the causal mask is its own job.
   */
  segmentIds: Int32Array;
  /** Number of loss tokens (sum of `lossWeights`): divide the summed loss by it. */
  tokenCount: number;
  /** Indices, into the batcher's sequences, of the rows in order. */
  exampleIndices: readonly number[];
}

/** Pads the chosen sequences (by index into `sequences`) into one {@link Batch}. */
export function collate(sequences: readonly TokenSequence[], indices: readonly number[], padId: number): Batch {
  const size = indices.length;
  let seqLen = 0;
  for (const i of indices) seqLen = Math.max(seqLen, sequences[i].ids.length);
  const cells = size * seqLen;
  const inputIds = new Int32Array(cells).fill(padId);
  const targets = new Int32Array(cells).fill(padId);
  const lossWeights = new Float32Array(cells);
  const attentionMask = new Uint8Array(cells);
  const segmentIds = new Int32Array(cells);
  let tokenCount = 0;
  indices.forEach((index, b) => {
    const { ids, lossMask, segmentIds: segments } = sequences[index];
    const row = b * seqLen;
    const n = ids.length;
    inputIds.set(ids, row);
    targets.set(ids.subarray(1), row);
    attentionMask.fill(1, row, row + n);
    if (segments) segmentIds.set(segments, row);
    else segmentIds.fill(1, row, row + n);
    for (let t = 0; t + 1 < n; t++) {
      const w = lossMask[t + 1];
      lossWeights[row + t] = w;
      tokenCount += w;
    }
  });
  return {
    size,
    seqLen,
    inputIds,
    targets,
    lossWeights,
    attentionMask,
    segmentIds,
    tokenCount,
    exampleIndices: [...indices],
  };
}
