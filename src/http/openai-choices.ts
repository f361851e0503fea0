/**
 * The `n` choices of a completion as rows of one decode batch: one
 * engine.generate call per row, all started together so the scheduler adds
 * them at the same step boundary; their chunks merged as they come; the first
 * failure aborts the other rows. Plus the pieces of OpenAI's response shapes
 * every endpoint shares: finish_reason, usage and logprobs.
 */
import { Unavailable } from '../common/errors.js';
import type { Engine, FinishReason, GenerateChunk, GenerateFinish, GenerateParams, TokenLogprob } from '../engine/engine-api.js';
import { inOpenAiTerms } from './openai-sampling.js';

/** One chunk of one row (choice `index`). */
export interface RowChunk {
  index: number;
  chunk: GenerateChunk;
}

type Step = { index: number; result: IteratorResult<GenerateChunk> };

/**
 * Starts every row and waits for each one's first chunk, so that what the
 * engine refuses before generating (prompt too long, queue full, unknown
 * adapter) fails the request with its HTTP status instead of in mid-stream.
 * Resolves to the merged chunks; every row ends with its finish chunk.
 * Closing the returned generator early aborts the rows still running.
 * @param promptField the request's name for the prompt ("prompt" or "messages"), for engine errors.
 */
export async function startRows(engine: Engine, rows: readonly GenerateParams[], signal: AbortSignal, promptField: string): Promise<AsyncGenerator<RowChunk>> {
  const controller = new AbortController();
  const forward = () => controller.abort(signal.reason);
  if (signal.aborted) forward();
  else signal.addEventListener('abort', forward, { once: true });
  const iterators = rows.map((p) => engine.generate(p, controller.signal)[Symbol.asyncIterator]());
  /** Ends the rows still running; `reason` undefined = all finished, nothing to abort. */
  const stop = (reason?: unknown) => {
    signal.removeEventListener('abort', forward);
    if (reason === undefined) return;
    controller.abort(reason);
    // Not awaited: a row's pending step ends on its own once the abort reaches the engine.
    for (const it of iterators) void it.return?.(undefined)?.catch(() => undefined);
  };
  const next = (index: number): Promise<Step> => iterators[index]!.next().then((result) => ({ index, result }));
  const first = await Promise.allSettled(iterators.map((_, i) => next(i)));
  const failed = first.find((r) => r.status === 'rejected');
  if (failed) {
    stop(failed.reason);
    throw inOpenAiTerms(signal.aborted ? signal.reason : failed.reason, promptField);
  }
  const ready = first.map((r) => (r as PromiseFulfilledResult<Step>).value);
  return merge(ready, next, signal, stop);
}

async function* merge(ready: Step[], next: (index: number) => Promise<Step>, signal: AbortSignal, stop: (reason?: unknown) => void): AsyncGenerator<RowChunk> {
  const pending = new Map<number, Promise<Step>>();
  let ended = false;
  try {
    for (;;) {
      for (const { index, result } of ready) {
        if (result.done) {
          // The engine ends a stream without a finish chunk only when it was aborted (shutdown).
          throw signal.aborted ? signal.reason : new Unavailable('the generation was cancelled');
        }
        yield { index, chunk: result.value };
        if (result.value.finish === undefined) pending.set(index, next(index));
      }
      if (pending.size === 0) break;
      const step = await Promise.race(pending.values());
      pending.delete(step.index);
      ready = [step];
    }
    ended = true;
  } catch (err) {
    stop(err);
    throw err;
  } finally {
    stop(ended ? undefined : new Unavailable('the response was abandoned'));
  }
}

/** Row i of a request with a seed uses seed + i: the choices differ, and each reproduces. */
export function rowParams(base: GenerateParams, n: number): GenerateParams[] {
  return Array.from({ length: n }, (_, i) => {
    const seed = base.sampling.seed === undefined ? undefined : base.sampling.seed + i;
    return { ...base, requestId: n === 1 ? base.requestId : `${base.requestId}.${i}`, sampling: { ...base.sampling, seed } };
  });
}

/** OpenAI's finish_reason: an end-of-sequence token and a stop sequence are both 'stop'. */
export function finishReason(reason: FinishReason): 'stop' | 'length' {
  if (reason === 'cancelled') throw new Unavailable('the generation was cancelled (the server is shutting down)');
  return reason === 'length' ? 'length' : 'stop';
}

/** OpenAI's usage object. */
export interface OpenAiUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/**
 * Usage over finished rows; `promptOf(index)` says which prompt a row ran so
 * that each prompt counts once however many choices it had.
 */
export function usageOf(finishes: ReadonlyMap<number, GenerateFinish>, promptOf: (index: number) => number): OpenAiUsage {
  const prompts = new Map<number, number>();
  let completion = 0;
  for (const [index, f] of finishes) {
    prompts.set(promptOf(index), f.usage.promptTokens);
    completion += f.usage.generatedTokens;
  }
  const prompt = [...prompts.values()].reduce((a, b) => a + b, 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/** The model a response names: the adapter version that served it ("name@version"), else the request's model. */
export function servedModel(requested: string, finish: GenerateFinish | undefined): string {
  return finish !== undefined && finish.adapter !== '' ? finish.adapter : requested;
}

/** UTF-8 bytes of a token's text (a token that splits a character decodes to U+FFFD, whose bytes these are). */
const bytes = (token: string) => [...Buffer.from(token, 'utf8')];

/** Chat logprobs of some tokens: `choice.logprobs.content`. */
export function chatLogprobs(lps: readonly TokenLogprob[]) {
  return lps.map((lp) => ({
    token: lp.token,
    logprob: lp.logprob,
    bytes: bytes(lp.token),
    top_logprobs: lp.topLogprobs.map((t) => ({ token: t.token, logprob: t.logprob, bytes: bytes(t.token) })),
  }));
}

/** The legacy completions logprobs object. */
export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: number[];
  top_logprobs: Record<string, number>[];
  /** Character offset of each token in the completion text. */
  text_offset: number[];
}

/**
 * Completions logprobs of some tokens; offsets count from `offset` (the
 * characters of the tokens before them), in UTF-16 code units as JavaScript
 * and Python's str index text.
 */
export function completionLogprobs(lps: readonly TokenLogprob[], offset = 0): CompletionLogprobs {
  const out: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  for (const lp of lps) {
    out.tokens.push(lp.token);
    out.token_logprobs.push(lp.logprob);
    out.top_logprobs.push(Object.fromEntries(lp.topLogprobs.map((t) => [t.token, t.logprob])));
    out.text_offset.push(offset);
    offset += lp.token.length;
  }
  return out;
}
