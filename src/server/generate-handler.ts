/**
 * Generate: decode and validate, stream the engine's chunks, encode each as a
 * GenerateResponse. The last message carries finish_reason, usage and adapter.
 */
import type { FinishReason as DomainFinishReason, GenerateChunk, GenerateParams } from '../engine/engine-api.js';
import { checkPromptBytes, promptBytesBound } from '../engine/prompt-bytes.js';
import { FinishReason, GenerateRequest, GenerateResponse } from '../gen/gentune/v1/generate.js';
import { decodeChatMessages, decodeSampling } from './convert.js';
import { DEFAULT_MAX_NEW_TOKENS } from './sampling-rules.js';
import { serverStream, type CallContext, type RpcDeps } from './rpc.js';
import { checkExactlyOne, checkRange, checkRequires, parseOptionalAdapterRef } from './validate.js';

export { DEFAULT_MAX_NEW_TOKENS } from './sampling-rules.js';

const FINISH: Record<DomainFinishReason, FinishReason> = {
  length: FinishReason.FINISH_REASON_LENGTH,
  eos: FinishReason.FINISH_REASON_EOS,
  stop_sequence: FinishReason.FINISH_REASON_STOP_SEQUENCE,
  cancelled: FinishReason.FINISH_REASON_CANCELLED,
};

/** Validates a GenerateRequest into engine params. */
export function decodeGenerateRequest(req: GenerateRequest, deps: RpcDeps, requestId: string): GenerateParams {
  const { limits } = deps.config;
  const model = deps.engine.info().model;
  const vocabSize = model.vocabSize;
  const input = checkExactlyOne({ prompt: req.prompt !== '', prompt_token_ids: req.promptTokenIds.length > 0, messages: req.messages.length > 0 });
  // The prompt's rules (ids in the vocabulary, at most limits.max_prompt_tokens
  // tokens) are the engine's (GenerationService.promptIds), the one place that
  // knows a text or chat prompt's length too.
  // Bytes first, here: a flood never reaches the serving thread's tokenizer (prompt-bytes.ts).
  const bound = promptBytesBound(limits, model.nPositions, model.maxTokenBytes);
  if (input === 'prompt') checkPromptBytes('prompt', req.prompt, bound);
  if (input === 'messages') checkPromptBytes('messages', req.messages.map((m) => m.content), bound);
  const topLogprobs = checkRange('top_logprobs', req.topLogprobs ?? 0, { min: 0, max: 20 });
  if (topLogprobs > 0) checkRequires('top_logprobs', topLogprobs, req.logprobs, '`logprobs` to be true');
  return {
    requestId,
    prompt: input === 'prompt' ? req.prompt : input === 'messages' ? { messages: decodeChatMessages('messages', req.messages) } : req.promptTokenIds,
    adapter: parseOptionalAdapterRef('adapter', req.adapter),
    sampling: decodeSampling(req.sampling, limits, { maxNewTokens: DEFAULT_MAX_NEW_TOKENS, temperature: 1 }, vocabSize),
    logprobs: req.logprobs,
    topLogprobs,
  };
}

/** Engine chunk -> proto message. */
export function encodeChunk(chunk: GenerateChunk): GenerateResponse {
  return GenerateResponse.fromPartial({
    text: chunk.text,
    tokenIds: chunk.tokenIds,
    logprobs: chunk.logprobs ?? [],
    finishReason: chunk.finish ? FINISH[chunk.finish.reason] : FinishReason.FINISH_REASON_UNSPECIFIED,
    usage: chunk.finish?.usage,
    adapter: chunk.finish?.adapter ?? '',
  });
}

async function* generate(deps: RpcDeps, req: GenerateRequest, ctx: CallContext): AsyncGenerator<GenerateResponse> {
  const params = decodeGenerateRequest(req, deps, ctx.requestId);
  if (deps.config.logPrompts) ctx.log.debug({ prompt: params.prompt }, 'prompt');
  let finished = false;
  for await (const chunk of deps.engine.generate(params, ctx.signal)) {
    finished ||= chunk.finish !== undefined;
    yield encodeChunk(chunk);
    if (finished) return;
  }
  // The engine stopped without a last message: it was aborted (shutdown) or broke its contract.
  if (ctx.signal.aborted) throw ctx.signal.reason;
  throw new Error('engine.generate ended without a finish chunk');
}

/** grpc-js handler of ModelService.Generate. */
export function generateHandler(deps: RpcDeps) {
  return serverStream<GenerateRequest, GenerateResponse>(deps, 'Generate', (req, ctx) => generate(deps, req, ctx));
}
