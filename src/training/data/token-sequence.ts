/**
 * A tokenized training sequence: one example, or several packed together.
 *
 * The loss mask convention, used everywhere in src/training/data:
 * `lossMask` is aligned with `ids` (same length) and is a mask over
 * *targets*: `lossMask[i] = 1` means "token `ids[i]`, predicted from
 * `ids[0..i-1]`, counts in the loss". So `lossMask[0]` is always 0 (nothing
 * predicts the first token). When the batcher shifts for next-token
 * prediction, position `t` has input `ids[t]`, target `ids[t + 1]` and loss
 * weight `lossMask[t + 1]`. Keeping the mask aligned with `ids` means
 * truncation and packing slice both arrays with the same indices.
 */
export interface TokenSequence {
  /** Token ids; length in tokens, at most the run's max_seq_len. */
  readonly ids: Int32Array;
  /** 1 where `ids[i]` is a loss target (see above), else 0; same length as `ids`. */
  readonly lossMask: Uint8Array;
  /**
   * For packed sequences: which example (1, 2, ...) each token belongs to, so
   * the model can keep attention within an example. Absent means one example.
   */
  readonly segmentIds?: Int32Array;
}

/** Number of tokens that count in the loss. */
export function lossTokenCount(sequence: TokenSequence): number {
  let n = 0;
  for (const m of sequence.lossMask) n += m;
  return n;
}
