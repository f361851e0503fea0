/**
 * Model-level sampling settings for tests and benches that drive the model
 * directly (GenerationSequence, BatchDecoder) rather than through a request:
 * every processor off, 64 tokens, seed 0, stop at EOS. Served requests get
 * their defaults from src/server/sampling-rules.ts instead (the one rule set,
 * documented in generate.proto).
 */
import type { SamplingParams } from '../../src/model/generation/sampling-params.js';

export const DEFAULT_SAMPLING: SamplingParams = {
  maxNewTokens: 64,
  temperature: 1,
  topK: 0,
  topP: 1,
  repetitionPenalty: 1,
  presencePenalty: 0,
  frequencyPenalty: 0,
  seed: 0,
  stop: [],
  logprobs: false,
  stopAtEos: true,
};
