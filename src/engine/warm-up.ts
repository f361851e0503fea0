/**
 * Warm-up before readiness: the first generation of a process pays once for
 * what later ones reuse (V8 compiling the tokenizer, sampler and decode-loop
 * code, the backend growing its heap and first allocating each tensor shape,
 * the KV cache arena), which made the first request after /readyz turned 200
 * several times slower to its first token than the next (bench/first-request.ts). One short
 * generation through the serving decode loop, prefill and decode steps both,
 * moves that cost before readiness.
 */
import type { Logger } from 'pino';
import type { GptModel } from '../model/gpt-model.js';
import type { GenerationService } from './generation-service.js';

/** Prompt tokens of the warm-up: a prefill chunk's worth (or less, on a short context). */
const WARMUP_PROMPT_TOKENS = 32;
/** New tokens of the warm-up: enough decode steps to reach steady state. */
const WARMUP_NEW_TOKENS = 4;

/** Generates a few tokens on the base model through `generation`; logs how long it took. */
export async function warmUp(model: GptModel, generation: GenerationService, log: Logger): Promise<void> {
  const started = performance.now();
  const tok = model.tokenizer;
  // Text through the tokenizer too, as a request's prompt goes (the row's tokens are decoded to text on the way out).
  const sample = 'The quick brown fox jumps over the lazy dog. '.repeat(8);
  const room = model.config.nPositions - WARMUP_NEW_TOKENS;
  const ids = tok.encode(sample).slice(0, Math.max(1, Math.min(WARMUP_PROMPT_TOKENS, room)));
  await generation.complete(
    ids.length > 0 ? ids : [tok.eosId],
    {
      maxNewTokens: Math.min(WARMUP_NEW_TOKENS, model.config.nPositions - 1),
      temperature: 1,
      topK: 0,
      topP: 1,
      repetitionPenalty: 1,
      presencePenalty: 0,
      frequencyPenalty: 0,
      seed: 0,
      stop: [],
      logprobs: false,
      stopAtEos: false,
    },
    undefined,
    new AbortController().signal,
  );
  log.info({ ms: Math.round(performance.now() - started) }, 'warm-up generation done');
}
