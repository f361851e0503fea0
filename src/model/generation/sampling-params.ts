import { InvalidArgument } from '../../common/errors.js';
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

/** How to pick tokens and when to stop. Names follow TGI / OpenAI. */
export interface SamplingParams {
  /** Tokens to generate at most (>= 1). */
  maxNewTokens: number;
  /** 0 = greedy; otherwise logits are divided by it. Default 1. */
  temperature: number;
  /** 0 = off. */
  topK: number;
  /** In (0, 1]; 1 = off. */
  topP: number;
  /** >= 1 penalises repeats; 1 = off (values in (0, 1) encourage repeats). */
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

/** Defaults for every field; callers override what they set. */
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

/** Checks each field, one rule per check; messages name the field and the value. */
export function validateSampling(p: SamplingParams): SamplingParams {
  const fail = (msg: string) => {
    throw new InvalidArgument(msg);
  };
  if (!Number.isInteger(p.maxNewTokens) || p.maxNewTokens < 1) fail(`\`max_new_tokens\` must be an integer >= 1, got ${p.maxNewTokens}`);
  if (!Number.isFinite(p.temperature) || p.temperature < 0) fail(`\`temperature\` must be >= 0, got ${p.temperature}`);
  if (!Number.isInteger(p.topK) || p.topK < 0) fail(`\`top_k\` must be an integer >= 0, got ${p.topK}`);
  if (!Number.isFinite(p.topP) || p.topP <= 0 || p.topP > 1) fail(`\`top_p\` must be > 0 and <= 1, got ${p.topP}`);
  if (!Number.isFinite(p.repetitionPenalty) || p.repetitionPenalty <= 0) fail(`\`repetition_penalty\` must be > 0, got ${p.repetitionPenalty}`);
  if (!Number.isFinite(p.presencePenalty)) fail(`\`presence_penalty\` must be a finite number, got ${p.presencePenalty}`);
  if (!Number.isFinite(p.frequencyPenalty)) fail(`\`frequency_penalty\` must be a finite number, got ${p.frequencyPenalty}`);
  if (!Number.isInteger(p.seed) || p.seed < 0) fail(`\`seed\` must be an integer >= 0, got ${p.seed}`);
  p.stop.forEach((s, i) => {
    if (s.length === 0) fail(`\`stop[${i}]\` must not be empty`);
  });
  return p;
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
