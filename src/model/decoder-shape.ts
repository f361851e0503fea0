/** What every decoder here has, under GPT-2's names. */
export interface DecoderShape {
  /** Model width (channels): `n_embd`, Llama's `hidden_size`. */
  nEmbd: number;
  nLayer: number;
  /** Attention (query) heads. */
  nHead: number;
  /** Context length in tokens: `n_positions`, Llama's `max_position_embeddings`. */
  nPositions: number;
  vocabSize: number;
}
