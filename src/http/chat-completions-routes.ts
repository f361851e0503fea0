/**
 * POST /v1/chat/completions: `messages` rendered through the model's chat
 * template (the engine's `prompt: { messages }`), `n` choices as rows of one
 * decode batch, streamed as `chat.completion.chunk` objects when `stream`
 * (each choice's first chunk carries role 'assistant').
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { InvalidArgument } from '../common/errors.js';
import type { ChatMessage, GenerateFinish, TokenLogprob } from '../engine/engine-api.js';
import { checkPromptBytes, promptBytesBound } from '../engine/prompt-bytes.js';
import { DEFAULT_MAX_NEW_TOKENS } from '../server/sampling-rules.js';
import { MAX_CHAT_MESSAGES } from '../server/convert.js';
import { checkRange, checkRequires } from '../server/validate.js';
import { route, SseReply, type HttpCallContext, type HttpDeps } from './http-call.js';
import { chatLogprobs, finishReason, rowParams, servedModel, startRows, usageOf, type RowChunk } from './openai-choices.js';
import { choiceCount, commonFields, includeUsage, openAiSampling, resolveModel, type CommonRequest } from './openai-sampling.js';
import { parseRequest } from './zod-request.js';

// Only text parts: an image or audio part is refused by its `type`.
const textPart = z.strictObject({ type: z.literal('text'), text: z.string() });
const content = z.union([z.string(), z.array(textPart)]);

const Message = z.strictObject({
  // `developer` is OpenAI's newer name for `system`.
  role: z.enum(['system', 'developer', 'user', 'assistant']),
  content,
});

const ChatRequest = z.strictObject({
  ...commonFields,
  messages: z.array(Message).min(1).max(MAX_CHAT_MESSAGES),
  max_completion_tokens: z.number().int().nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.number().int().nullish(),
});
type ChatRequest = z.output<typeof ChatRequest> & CommonRequest;

/** OpenAI messages -> engine chat turns (text parts joined, `developer` as `system`). */
export function chatMessages(messages: ChatRequest['messages']): ChatMessage[] {
  return messages.map((m) => ({
    role: m.role === 'developer' ? 'system' : m.role,
    content: typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join(''),
  }));
}

/** `max_completion_tokens` is the newer name of `max_tokens`; one of them at most. */
function maxTokens(body: ChatRequest): number | undefined {
  if (body.max_tokens != null && body.max_completion_tokens != null) {
    throw new InvalidArgument(`\`max_completion_tokens\` and \`max_tokens\` are the same setting: set one, got ${body.max_completion_tokens} and ${body.max_tokens}`);
  }
  return body.max_completion_tokens ?? body.max_tokens ?? undefined;
}

type Head = { id: string; object: string; created: number; system_fingerprint: string };

/** Registers the route. */
export function chatCompletionsRoutes(app: FastifyInstance, deps: HttpDeps): void {
  app.post(
    '/v1/chat/completions',
    route(deps, { operation: 'chat.completions', role: 'Generate', streaming: true }, async (request, ctx) => {
      const body = parseRequest(ChatRequest, request.body) as ChatRequest;
      const n = choiceCount(body, deps);
      const usage = includeUsage(body);
      const adapter = resolveModel(body.model, deps);
      const sampling = openAiSampling({ ...body, max_tokens: maxTokens(body) }, deps, DEFAULT_MAX_NEW_TOKENS);
      const top = checkRange('top_logprobs', body.top_logprobs ?? 0, { min: 0, max: 20 });
      if (body.top_logprobs != null) checkRequires('top_logprobs', top, body.logprobs === true, '`logprobs` to be true');
      const logprobs = body.logprobs === true;
      if (body.user !== undefined) ctx.log.info({ user: body.user }, 'end user');
      const messages = chatMessages(body.messages);
      // Bytes first: a flood never reaches the serving thread's tokenizer (prompt-bytes.ts).
      const model = deps.engine.info().model;
      checkPromptBytes('messages', messages.map((m) => m.content), promptBytesBound(deps.config.limits, model.nPositions, model.maxTokenBytes));
      if (deps.config.logPrompts) ctx.log.debug({ prompt: messages }, 'prompt');
      const rows = rowParams({ requestId: ctx.requestId, prompt: { messages }, adapter, sampling, logprobs, topLogprobs: top }, n);
      const chunks = await startRows(deps.engine, rows, ctx.signal, 'messages');
      const head = { id: `chatcmpl-${randomUUID()}`, created: Math.floor(Date.now() / 1000), system_fingerprint: `gentune-${deps.engine.info().version}` };
      if (body.stream === true) return new SseReply(stream(chunks, body.model, { ...head, object: 'chat.completion.chunk' }, logprobs, usage));
      return collect(chunks, body.model, { ...head, object: 'chat.completion' }, n, logprobs, ctx);
    }),
  );
}

async function collect(chunks: AsyncGenerator<RowChunk>, model: string, head: Head, n: number, logprobs: boolean, ctx: HttpCallContext) {
  const texts = Array.from({ length: n }, () => '');
  const lps = Array.from({ length: n }, (): TokenLogprob[] => []);
  const finishes = new Map<number, GenerateFinish>();
  for await (const { index, chunk } of chunks) {
    texts[index] += chunk.text;
    if (chunk.logprobs) lps[index]!.push(...chunk.logprobs);
    if (chunk.finish) finishes.set(index, chunk.finish);
  }
  ctx.log.debug({ choices: n }, 'chat completion finished');
  const choices = texts.map((text, index) => ({
    index,
    message: { role: 'assistant' as const, content: text, refusal: null },
    logprobs: logprobs ? { content: chatLogprobs(lps[index]!), refusal: null } : null,
    finish_reason: finishReason(finishes.get(index)!.reason),
  }));
  return { ...head, model: servedModel(model, finishes.get(0)), choices, usage: usageOf(finishes, () => 0) };
}

async function* stream(chunks: AsyncGenerator<RowChunk>, model: string, head: Head, logprobs: boolean, usage: boolean) {
  const finishes = new Map<number, GenerateFinish>();
  const started = new Set<number>();
  for await (const { index, chunk } of chunks) {
    const first = !started.has(index);
    started.add(index);
    // Text held back (a split UTF-8 character, a possible stop sequence) makes empty chunks: skip them unless they carry logprobs.
    if (!first && chunk.finish === undefined && chunk.text === '' && !logprobs) continue;
    if (chunk.finish) finishes.set(index, chunk.finish);
    const delta = first ? { role: 'assistant' as const, content: chunk.text } : chunk.finish && chunk.text === '' ? {} : { content: chunk.text };
    const choice = {
      index,
      delta,
      logprobs: logprobs ? { content: chatLogprobs(chunk.logprobs ?? []), refusal: null } : null,
      finish_reason: chunk.finish ? finishReason(chunk.finish.reason) : null,
    };
    yield { ...head, model: servedModel(model, chunk.finish), choices: [choice] };
  }
  if (usage) yield { ...head, model: servedModel(model, finishes.get(0)), choices: [], usage: usageOf(finishes, () => 0) };
}
