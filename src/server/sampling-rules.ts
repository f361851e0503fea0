/**
 * The one rule set for sampling settings, shared by both front doors: the
 * gRPC SamplingParams (convert.ts) and the OpenAI HTTP body
 * (src/http/openai-sampling.ts) decode into {@link SamplingInput}, then
 * {@link checkSampling} validates it and fills in defaults. Only the field
 * names differ between the dialects (`max_new_tokens` vs `max_tokens`), and
 * OpenAI's narrower temperature range, so both are passed in; the ranges,
 * defaults and limit labels live here once.
 */
import type { LimitsConfig } from '../engine/config.js';
import type { SamplingParams as DomainSampling } from '../engine/engine-api.js';
import { checkLimit, checkMaxItems, checkMaxLength, checkRange, checkRequired } from './validate.js';

/**
 * Sampling fields as a request gives them (undefined = not set): the engine's
 * SamplingParams with every field optional. `seed` is already an integer (the
 * gRPC side parses its uint64 string first); response_format is decoded apart.
 */
export type SamplingInput = Partial<Omit<DomainSampling, 'stop' | 'maxNewTokensDefaulted' | 'responseFormat'>> & { stop?: readonly string[] };

/** Defaults that differ between Generate and Evaluate. */
export interface SamplingDefaults {
  /** Tokens; capped by limits.maxNewTokens. */
  maxNewTokens: number;
  temperature: number;
}

/** How a dialect names its fields, and its temperature ceiling. */
export interface SamplingDialect {
  /** Request field names by SamplingInput key, e.g. { maxNewTokens: 'max_tokens' }. */
  names: Record<keyof SamplingInput, string>;
  /** Highest temperature accepted: 100 on gRPC, 2 as OpenAI documents. */
  maxTemperature: number;
}

/** gRPC's proto field names. */
export const GRPC_SAMPLING: SamplingDialect = {
  names: {
    maxNewTokens: 'max_new_tokens',
    temperature: 'temperature',
    topK: 'top_k',
    topP: 'top_p',
    repetitionPenalty: 'repetition_penalty',
    presencePenalty: 'presence_penalty',
    frequencyPenalty: 'frequency_penalty',
    seed: 'seed',
    stop: 'stop',
  },
  maxTemperature: 100,
};

/** Default max_new_tokens of a Generate (and an OpenAI chat) request that sets none, in tokens (capped by --max-new-tokens). */
export const DEFAULT_MAX_NEW_TOKENS = 64;

/** Most stop sequences in one request. */
export const MAX_STOP_SEQUENCES = 4;
/** Most characters in one stop sequence. */
export const MAX_STOP_LENGTH = 64;

/**
 * Validates sampling settings and fills in defaults.
 * @param vocabSize upper bound of top_k; 0 when not known yet.
 */
export function checkSampling(
  p: SamplingInput,
  dialect: SamplingDialect,
  limits: LimitsConfig,
  defaults: SamplingDefaults,
  vocabSize: number,
): DomainSampling {
  const n = dialect.names;
  const max = limits.maxNewTokens;
  const stop = [...(p.stop ?? [])];
  checkMaxItems(n.stop, stop, MAX_STOP_SEQUENCES);
  stop.forEach((s, i) => {
    checkRequired(`${n.stop}[${i}]`, s);
    checkMaxLength(`${n.stop}[${i}]`, s, MAX_STOP_LENGTH);
  });
  const penalty = (field: string, value: number | undefined) => checkRange(field, value ?? 0, { min: -2, max: 2 });
  return {
    maxNewTokens: checkLimit(n.maxNewTokens, checkRange(n.maxNewTokens, p.maxNewTokens ?? Math.min(defaults.maxNewTokens, max), { min: 1 }), limits, 'maxNewTokens'),
    temperature: checkRange(n.temperature, p.temperature ?? defaults.temperature, { min: 0, max: dialect.maxTemperature }),
    topK: checkRange(n.topK, p.topK ?? 0, vocabSize > 0 ? { min: 0, max: vocabSize } : { min: 0 }),
    topP: checkRange(n.topP, p.topP ?? 1, { min: 0, max: 1, minExclusive: true }),
    repetitionPenalty: checkRange(n.repetitionPenalty, p.repetitionPenalty ?? 1, { min: 0, max: 10, minExclusive: true }),
    presencePenalty: penalty(n.presencePenalty, p.presencePenalty),
    frequencyPenalty: penalty(n.frequencyPenalty, p.frequencyPenalty),
    seed: p.seed === undefined ? undefined : checkRange(n.seed, p.seed, { min: 0, max: Number.MAX_SAFE_INTEGER }),
    stop,
    ...(p.maxNewTokens === undefined ? { maxNewTokensDefaulted: true } : {}),
  };
}
