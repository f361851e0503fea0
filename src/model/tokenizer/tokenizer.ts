/** A tokenizer as the model and the trainer see it. Ids are vocabulary indices. */
export interface Tokenizer {
  /** Number of ids, including special tokens. */
  readonly vocabSize: number;
  /** Id of `<|endoftext|>`, used as end of sequence (and as BOS/padding where needed). */
  readonly eosId: number;
  /** Text to ids. Special tokens in the text are encoded as ordinary text. */
  encode(text: string): number[];
  /** Ids to text; invalid UTF-8 becomes U+FFFD. */
  decode(ids: readonly number[]): string;
  /** The raw bytes a token stands for (empty for special tokens). */
  tokenBytes(id: number): Uint8Array;
}
