/**
 * POST /v1/completions: OpenAI's legacy text completion. `prompt` is a
 * string, an array of strings, token ids, or an array of token-id arrays;
 * each prompt runs `n` choices (choice index = prompt * n + i), all rows of
 * one decode batch. Streams as `text_completion` chunks when `stream`.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { GenerateFinish, GenerateParams } from '../engine/engine-api.js';
import { InvalidArgument } from '../common/errors.js';
import { limitLabel } from '../engine/limit-label.js';
import { checkPromptBytes, promptBytesBound } from '../engine/prompt-bytes.js';
import { checkItemsLimit, checkRange } from '../server/validate.js';
import { route, SseReply, type HttpCallContext, type HttpDeps } from './http-call.js';
import { completionLogprobs, finishReason, rowParams, servedModel, startRows, usageOf, type CompletionLogprobs, type RowChunk } from './openai-choices.js';
import { choiceCount, commonFields, includeUsage, openAiSampling, resolveModel, type CommonRequest } from './openai-sampling.js';
import { parseRequest } from './zod-request.js';

/** OpenAI's default max_tokens for completions, in tokens. */
export const DEFAULT_COMPLETION_TOKENS = 16;

const tokenIds = z.array(z.number().int().min(0)).min(1);

const CompletionRequest = z.strictObject({
  ...commonFields,
  prompt: z.union([z.string(), z.array(z.string()).min(1), tokenIds, z.array(tokenIds).min(1)]),
  // Integer 0..5 as OpenAI: the number of alternatives per token (0 = the chosen token's logprob only).
  logprobs: z.number().int().min(0).max(5).nullish(),
  // Accepted only as its no-op value: gentune returns every choice it runs.
  best_of: z.literal(1).nullish(),
  echo: z.literal(false).nullish(),
});
type CompletionRequest = z.output<typeof CompletionRequest> & CommonRequest;

/** The prompts of a request, each a string or token ids checked against the vocabulary and limits. */
function prompts(body: CompletionRequest, deps: HttpDeps): (string | number[])[] {
  const p = body.prompt;
  const list: (string | number[])[] = typeof p === 'string' ? [p] : p.length > 0 && typeof p[0] === 'number' ? [p as number[]] : (p as (string | number[])[]);
  const model = deps.engine.info().model;
  const { vocabSize } = model;
  // Bytes first: a flood never reaches the serving thread's tokenizer (prompt-bytes.ts).
  const bound = promptBytesBound(deps.config.limits, model.nPositions, model.maxTokenBytes);
  list.forEach((one, k) => {
    if (typeof one === 'string') return checkPromptBytes(typeof p === 'string' ? 'prompt' : `prompt[${k}]`, one, bound);
    const field = list.length === 1 && typeof p[0] === 'number' ? 'prompt' : `prompt[${k}]`;
    checkItemsLimit(field, one, deps.config.limits, 'maxPromptTokens', 'tokens');
    if (vocabSize > 0) one.forEach((id, i) => checkRange(`${field}[${i}]`, id, { min: 0, max: vocabSize - 1 }));
  });
  return list;
}

interface Choice {
  index: number;
  text: string;
  logprobs: CompletionLogprobs | null;
  finish_reason: 'stop' | 'length' | null;
}

/** Registers the route. */
export function completionsRoutes(app: FastifyInstance, deps: HttpDeps): void {
  app.post(
    '/v1/completions',
    route(deps, { operation: 'completions', role: 'Generate', streaming: true }, async (request, ctx) => {
      const body = parseRequest(CompletionRequest, request.body) as CompletionRequest;
      const n = choiceCount(body, deps);
      const list = prompts(body, deps);
      const { maxBatchSize } = deps.config.limits;
      if (n * list.length > maxBatchSize) {
        throw new InvalidArgument(`\`n\` ${n} for each of ${list.length} prompts makes ${n * list.length} choices: at most ${limitLabel('maxBatchSize', maxBatchSize)}`);
      }
      const usage = includeUsage(body);
      const adapter = resolveModel(body.model, deps);
      const sampling = openAiSampling(body, deps, DEFAULT_COMPLETION_TOKENS);
      const logprobs = body.logprobs != null;
      if (body.user !== undefined) ctx.log.info({ user: body.user }, 'end user');
      const rows = list.flatMap((prompt, k): GenerateParams[] =>
        rowParams({ requestId: `${ctx.requestId}${list.length > 1 ? `.p${k}` : ''}`, prompt, adapter, sampling, logprobs, topLogprobs: body.logprobs ?? 0 }, n),
      );
      if (deps.config.logPrompts) ctx.log.debug({ prompt: list }, 'prompt');
      const chunks = await startRows(deps.engine, rows, ctx.signal, 'prompt');
      const head = { id: `cmpl-${randomUUID()}`, object: 'text_completion' as const, created: Math.floor(Date.now() / 1000), system_fingerprint: `gentune-${deps.engine.info().version}` };
      const promptOf = (index: number) => Math.floor(index / n);
      if (body.stream === true) return new SseReply(stream(chunks, body.model, head, promptOf, logprobs, usage));
      return collect(chunks, body.model, head, promptOf, rows.length, logprobs, ctx);
    }),
  );
}

type Head = { id: string; object: 'text_completion'; created: number; system_fingerprint: string };

async function collect(chunks: AsyncGenerator<RowChunk>, model: string, head: Head, promptOf: (i: number) => number, count: number, logprobs: boolean, ctx: HttpCallContext) {
  const choices: Choice[] = Array.from({ length: count }, (_, index) => ({ index, text: '', logprobs: logprobs ? completionLogprobs([]) : null, finish_reason: null }));
  const finishes = new Map<number, GenerateFinish>();
  for await (const { index, chunk } of chunks) {
    const c = choices[index]!;
    c.text += chunk.text;
    if (c.logprobs && chunk.logprobs) {
      const more = completionLogprobs(chunk.logprobs, c.logprobs.text_offset.length === 0 ? 0 : c.logprobs.text_offset.at(-1)! + c.logprobs.tokens.at(-1)!.length);
      c.logprobs.tokens.push(...more.tokens);
      c.logprobs.token_logprobs.push(...more.token_logprobs);
      c.logprobs.top_logprobs.push(...more.top_logprobs);
      c.logprobs.text_offset.push(...more.text_offset);
    }
    if (chunk.finish) {
      c.finish_reason = finishReason(chunk.finish.reason);
      finishes.set(index, chunk.finish);
    }
  }
  ctx.log.debug({ choices: count }, 'completion finished');
  return { ...head, model: servedModel(model, finishes.get(0)), choices, usage: usageOf(finishes, promptOf) };
}

async function* stream(chunks: AsyncGenerator<RowChunk>, model: string, head: Head, promptOf: (i: number) => number, logprobs: boolean, usage: boolean) {
  const finishes = new Map<number, GenerateFinish>();
  const offsets = new Map<number, number>();
  for await (const { index, chunk } of chunks) {
    if (chunk.finish === undefined && chunk.text === '' && !logprobs) continue;
    let lps: CompletionLogprobs | null = null;
    if (logprobs) {
      lps = completionLogprobs(chunk.logprobs ?? [], offsets.get(index) ?? 0);
      offsets.set(index, (offsets.get(index) ?? 0) + lps.tokens.reduce((a, t) => a + t.length, 0));
    }
    if (chunk.finish) finishes.set(index, chunk.finish);
    const choice: Choice = { index, text: chunk.text, logprobs: lps, finish_reason: chunk.finish ? finishReason(chunk.finish.reason) : null };
    yield { ...head, model: servedModel(model, chunk.finish), choices: [choice] };
  }
  if (usage) yield { ...head, model: servedModel(model, finishes.get(0)), choices: [], usage: usageOf(finishes, promptOf) };
}
