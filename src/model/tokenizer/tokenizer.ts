/** Options of {@link Tokenizer.encode}. */
export interface EncodeOptions {
  /**
   * Encode the spellings of special tokens in the text (`<|im_end|>`,
   * `<|endoftext|>`) as those tokens. Default false: they are ordinary text, so
   * text from a user can never forge a control token. Set it for text the
   * program wrote, such as a rendered chat template.
   */
  parseSpecialTokens?: boolean;
}

/** A tokenizer as the model and the trainer see it. Ids are vocabulary indices. */
export interface Tokenizer {
  /** Number of ids, including special tokens. */
  readonly vocabSize: number;
  /**
   * The end-of-sequence id (GPT-2's `<|endoftext|>`; a Hugging Face folder's
   * `eos_token`), also used as padding and, for GPT-2, as BOS.
   */
  readonly eosId: number;
  /** Text to ids. Special tokens in the text are encoded as ordinary text unless `options.parseSpecialTokens`. */
  encode(text: string, options?: EncodeOptions): number[];
  /** Ids to text; invalid UTF-8 becomes U+FFFD. */
  decode(ids: readonly number[]): string;
  /** The raw bytes a token stands for (empty for special tokens). */
  tokenBytes(id: number): Uint8Array;
  /**
   * Every id that ends a sequence, `eosId` first (a Hugging Face folder's
   * generation_config.json may name several). Absent: `eosId` alone.
   */
  readonly eosIds?: readonly number[];
  /** The id of a vocabulary entry by its spelling (`<|im_end|>`), if the tokenizer can look it up. */
  tokenToId?(token: string): number | undefined;
  /** The spelling of an id's vocabulary entry, if the tokenizer can look it up. */
  idToToken?(id: number): string | undefined;
}
