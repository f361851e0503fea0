/** Engine domain types (see ../engine-api.ts): Generate: its parameters, the streamed chunks and how a generation ends. */
import type { SamplingParams as ModelSampling } from '../../model/generation/sampling-params.js';
import type { AdapterRef } from './adapters.js';
import type { ChatMessage } from './datasets.js';

/**
 * The shape the output must take (OpenAI's `response_format`, proto
 * ResponseFormat): the model's own type (src/model/generation/response-format.ts;
 * check it with `checkResponseFormat`). Plain data: it crosses the worker
 * boundary by structured clone.
 */
export type { ResponseFormat } from '../../model/generation/response-format.js';

/** Why a generation ended (proto FinishReason). */
export type FinishReason = 'length' | 'eos' | 'stop_sequence' | 'cancelled';

/**
 * Sampling settings with the server's defaults already applied, except `seed`
 * (undefined = random): the model's SamplingParams (what each field means)
 * less what the engine sets per request (the seed when unset, logprobs, EOS).
 * The ranges are checked in one place, src/server/sampling-rules.ts, and
 * documented for clients in generate.proto.
 */
export type SamplingParams = Pick<
  ModelSampling,
  'maxNewTokens' | 'temperature' | 'topK' | 'topP' | 'repetitionPenalty' | 'presencePenalty' | 'frequencyPenalty' | 'stop' | 'responseFormat'
> & {
  /** Sampler seed; undefined = random. */
  seed?: number;
  /**
   * True when the request left max_new_tokens out and `maxNewTokens` is the
   * server's default: the engine then caps it to the context the prompt leaves
   * instead of refusing the request (an explicit one that does not fit is
   * InvalidArgument naming `max_new_tokens`).
   */
  maxNewTokensDefaulted?: boolean;
};

/** Input of {@link Engine.generate}. */
export interface GenerateParams {
  /** Id for logs (from the x-request-id header, or generated). */
  requestId: string;
  /**
   * Prompt text, token ids in the base vocabulary, or a conversation rendered
   * with the model's chat template and its generation prompt (the rendered
   * prompt's tokens count against limits.maxPromptTokens).
   */
  prompt: string | number[] | { messages: ChatMessage[] };
  /** Adapter to use; null = the bare base model. */
  adapter: AdapterRef | null;
  sampling: SamplingParams;
  /** Return the log probability of each generated token. */
  logprobs: boolean;
  /** Number of alternatives per position, 0..20 (0 unless logprobs). */
  topLogprobs: number;
}

/** A candidate token at one position. */
export interface TopLogprob {
  tokenId: number;
  token: string;
  /** Natural log probability, <= 0. */
  logprob: number;
}

/** Log probability of one generated token. */
export interface TokenLogprob extends TopLogprob {
  /** Most likely alternatives, most likely first; empty unless topLogprobs > 0. */
  topLogprobs: TopLogprob[];
}

/** Counts and timings of a finished generation. */
export interface Usage {
  promptTokens: number;
  generatedTokens: number;
  /** Arrival to first generated token, in milliseconds. */
  timeToFirstTokenMs: number;
  /** Arrival to last generated token, in milliseconds. */
  totalMs: number;
  /** Arrival to joining the running batch, in milliseconds. */
  queueMs: number;
}

/** How a generation ended; carried by the last chunk only. */
export interface GenerateFinish {
  reason: FinishReason;
  usage: Usage;
  /** The adapter that served it as "name@version"; '' for the base model. */
  adapter: string;
}

/**
 * One step of output. Every chunk but the last has no `finish`; the last has
 * one (its text / tokens may be empty). Concatenated `text` is the output.
 */
export interface GenerateChunk {
  /**
   * New text. Held back until settled: bytes of a UTF-8 character split
   * across tokens, and text that may be the start of a stop sequence.
   */
  text: string;
  /** Token ids generated since the previous chunk. */
  tokenIds: number[];
  /** One entry per token id when logprobs was requested. */
  logprobs?: TokenLogprob[];
  finish?: GenerateFinish;
}
