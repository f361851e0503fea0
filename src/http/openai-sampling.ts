/**
 * The request fields both generation endpoints share (`model`, sampling,
 * `n`, `stream`, `response_format`, `user`) and their decoding into engine
 * types. The sampling rules are the gRPC side's (src/server/sampling-rules.ts)
 * under OpenAI's field names, so both front doors accept the same ranges and
 * name the same server limits; OpenAI's narrower temperature range (0..2)
 * is the one difference.
 */
import { z } from 'zod';
import { GentuneError, InvalidArgument, NotFound } from '../common/errors.js';
import type { AdapterRef, ResponseFormat, SamplingParams } from '../engine/engine-api.js';
import { checkResponseFormat } from '../engine/response-format.js';
import { checkSampling, GRPC_SAMPLING, type SamplingDialect } from '../server/sampling-rules.js';
import { checkLimit, parseAdapterRef, quote } from '../server/validate.js';
import type { HttpDeps } from './http-call.js';

/** OpenAI's names for the sampling fields (`max_tokens` is gRPC's `max_new_tokens`). */
const OPENAI_SAMPLING: SamplingDialect = {
  names: { ...GRPC_SAMPLING.names, maxNewTokens: 'max_tokens' },
  maxTemperature: 2,
};

/** A JSON Schema is any object; its content is the constrained decoder's to check. */
const jsonSchema = z.strictObject({
  name: z.string().min(1).max(64),
  schema: z.record(z.string(), z.unknown()).optional(),
  strict: z.boolean().nullish(),
  description: z.string().optional(),
});

const responseFormat = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('text') }),
  z.strictObject({ type: z.literal('json_object') }),
  z.strictObject({ type: z.literal('json_schema'), json_schema: jsonSchema }),
]);

/**
 * Fields of both endpoints. OpenAI documents most as nullable, and some
 * clients send `null` for "not set", so null is accepted as absent.
 */
export const commonFields = {
  model: z.string().min(1),
  max_tokens: z.number().int().nullish(),
  temperature: z.number().nullish(),
  top_p: z.number().nullish(),
  stop: z.union([z.string(), z.array(z.string())]).nullish(),
  seed: z.number().int().nullish(),
  n: z.number().int().min(1).nullish(),
  presence_penalty: z.number().nullish(),
  frequency_penalty: z.number().nullish(),
  user: z.string().max(256).optional(),
  stream: z.boolean().nullish(),
  stream_options: z.strictObject({ include_usage: z.boolean().optional() }).nullish(),
  response_format: responseFormat.optional(),
};

/** The shared fields as parsed. */
export interface CommonRequest {
  model: string;
  max_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  stop?: string | string[] | null;
  seed?: number | null;
  n?: number | null;
  presence_penalty?: number | null;
  frequency_penalty?: number | null;
  user?: string;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean } | null;
  response_format?: z.output<typeof responseFormat>;
}

const orUndefined = <T>(v: T | null | undefined): T | undefined => v ?? undefined;

/**
 * The sampling settings of a request, checked by the shared rules.
 * @param defaultMaxTokens used when the request sets no max_tokens (capped by limits.maxNewTokens).
 */
export function openAiSampling(body: CommonRequest, deps: HttpDeps, defaultMaxTokens: number): SamplingParams {
  const stop = body.stop == null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop;
  const sampling = checkSampling(
    {
      maxNewTokens: orUndefined(body.max_tokens),
      temperature: orUndefined(body.temperature),
      topP: orUndefined(body.top_p),
      presencePenalty: orUndefined(body.presence_penalty),
      frequencyPenalty: orUndefined(body.frequency_penalty),
      seed: orUndefined(body.seed),
      stop,
    },
    OPENAI_SAMPLING,
    deps.config.limits,
    { maxNewTokens: defaultMaxTokens, temperature: 1 },
    deps.engine.info().model.vocabSize,
  );
  const format = decodeResponseFormat(body.response_format);
  return format === undefined ? sampling : { ...sampling, responseFormat: format };
}

/** `response_format` -> the engine's ResponseFormat; `{type: 'text'}` is the default and left out. */
export function decodeResponseFormat(f: CommonRequest['response_format']): ResponseFormat | undefined {
  if (f === undefined || f.type === 'text') return undefined;
  if (f.type === 'json_object') return { type: 'json_object' };
  const { name, schema, strict } = f.json_schema;
  if (schema === undefined) throw new InvalidArgument('`response_format.json_schema.schema` is required by gentune (a JSON Schema object)');
  // The same subset check as gRPC's decodeResponseFormat: an unsupported keyword is a 400 naming its path.
  return checkResponseFormat({ type: 'json_schema', schema, name, ...(strict == null ? {} : { strict }) }, 'response_format');
}

/** `n`, 1..limits.maxBatchSize: the choices run as rows of one decode batch. */
export function choiceCount(body: CommonRequest, deps: HttpDeps): number {
  return checkLimit('n', body.n ?? 1, deps.config.limits, 'maxBatchSize');
}

/** `stream_options` only applies to a stream, as OpenAI rules. */
export function includeUsage(body: CommonRequest): boolean {
  if (body.stream_options != null && body.stream !== true) {
    throw new InvalidArgument(`\`stream_options\` is only allowed when \`stream\` is true, got stream ${quote(String(body.stream ?? false))}`);
  }
  return body.stream_options?.include_usage === true;
}

/**
 * The `model` of a request: the base model's name (null: no adapter), an
 * adapter name (its latest version) or `name@version`.
 * @throws NotFound naming `model` when it is none of these.
 */
export function resolveModel(model: string, deps: HttpDeps): AdapterRef | null {
  if (model === deps.engine.info().model.name) return null;
  try {
    return parseAdapterRef('model', model);
  } catch (err) {
    throw new NotFound(`\`model\` ${quote(model)} is neither the base model nor a published adapter (GET /v1/models lists them)`, { cause: err });
  }
}

/**
 * The engine names the gRPC fields (`adapter`, `max_new_tokens`,
 * `prompt_token_ids`); an error reaching an OpenAI client names the field it
 * sent instead.
 */
export function inOpenAiTerms(err: unknown, promptField: string): unknown {
  if (!(err instanceof GentuneError)) return err;
  const renamed = err.message
    .replace(/^`adapter` /, '`model` ')
    .replace(/^`max_new_tokens` /, '`max_tokens` ')
    .replace(/^`prompt_token_ids(\[\d+\])?` /, `\`${promptField}$1\` `);
  return renamed === err.message ? err : new GentuneError(err.code, renamed, { cause: err });
}
