import {
  type LogitsProcessor,
  FrequencyPenaltyProcessor,
  PresencePenaltyProcessor,
  RepetitionPenaltyProcessor,
  TemperatureProcessor,
  TopKProcessor,
  TopPProcessor,
} from './logits-processors.js';
import type { ResponseFormat } from './response-format.js';

/**
 * How to pick tokens and when to stop. Names follow TGI / OpenAI. The one
 * sampling type: the engine's SamplingParams and the requests' SamplingInput
 * are made from it; the allowed ranges are checked once, for both front doors,
 * in src/server/sampling-rules.ts (and documented in generate.proto).
 */
export interface SamplingParams {
  /** Tokens to generate at most. */
  maxNewTokens: number;
  /** 0 = greedy; otherwise logits are divided by it. */
  temperature: number;
  /** Keep the k most likely tokens; 0 = off. */
  topK: number;
  /** Keep the smallest set of tokens whose probability reaches it; 1 = off. */
  topP: number;
  /** Above 1 penalises tokens already in the context (below 1 encourages them); 1 = off. */
  repetitionPenalty: number;
  /** OpenAI's presence penalty: subtracted once from the logit of every token generated so far; 0 = off. */
  presencePenalty: number;
  /** OpenAI's frequency penalty: subtracted from a token's logit once per time it was generated; 0 = off. */
  frequencyPenalty: number;
  /** Seed of the sampler; the same seed and prompt give the same text. */
  seed: number;
  /** Generation stops before the first occurrence of any of these strings. */
  stop: string[];
  /** Return the log-probability of each generated token. */
  logprobs: boolean;
  /** Stop at an end-of-sequence token (default true). */
  stopAtEos: boolean;
  /**
   * The ids that end the generation with `eos` when `stopAtEos`: a model's
   * EOS ids and, for a chat prompt, its template's end-of-turn token. Default:
   * the tokenizer's `eosId` alone.
   */
  eosIds?: readonly number[];
  /**
   * Constrains the output to JSON (any object, or a schema): decoding masks
   * every token that would leave the grammar, and EOS until it is complete.
   * Default: free text. The constraint itself (a GrammarConstraint, made by
   * the model's GrammarCache) is handed to the sequence.
   */
  responseFormat?: ResponseFormat;
}

/**
 * The processors a request asks for, in application order (penalties on raw
 * logits first, as vLLM applies them, then temperature and the filters).
 * @param promptLength tokens of the prompt at the start of each context: the
 *   OpenAI penalties count generated tokens only.
 */
export function logitsProcessors(p: SamplingParams, promptLength = 0): LogitsProcessor[] {
  const out: LogitsProcessor[] = [];
  if (p.repetitionPenalty !== 1) out.push(new RepetitionPenaltyProcessor(p.repetitionPenalty));
  if (p.presencePenalty !== 0) out.push(new PresencePenaltyProcessor(p.presencePenalty, promptLength));
  if (p.frequencyPenalty !== 0) out.push(new FrequencyPenaltyProcessor(p.frequencyPenalty, promptLength));
  if (p.temperature > 0 && p.temperature !== 1) out.push(new TemperatureProcessor(p.temperature));
  if (p.temperature > 0 && p.topK > 0) out.push(new TopKProcessor(p.topK));
  if (p.temperature > 0 && p.topP < 1) out.push(new TopPProcessor(p.topP));
  return out;
}
