import type { GptModel } from '../gpt-model.js';
import { BatchDecoder } from './batch-decoder.js';
import { GenerationSequence, type SequenceAdapter, type TokenOutput } from './generation-sequence.js';
import type { SamplingParams } from './sampling-params.js';
import type { GrammarConstraint } from './grammar-constraint.js';
import { isConstrained } from './response-format.js';

/** One prompt to complete. */
export interface GenerationRequest {
  promptIds: number[];
  params: SamplingParams;
  adapter?: SequenceAdapter;
}

/** A token produced for request `index`. */
export interface GenerationEvent extends TokenOutput {
  index: number;
}

/**
 * Generates for a fixed set of prompts together: one prefill, then one decode
 * step per token for all unfinished rows. Yields events as they are produced.
 * (The serving engine's scheduler uses BatchDecoder directly so requests can
 * join a running batch.)
 */
export async function* generate(model: GptModel, requests: GenerationRequest[], signal?: AbortSignal): AsyncGenerator<GenerationEvent> {
  const grammars = await Promise.all(requests.map((r) => sequenceGrammar(model, r.params)));
  const decoder = new BatchDecoder(model);
  const seqs = requests.map(
    (r, i) => new GenerationSequence(r.promptIds, r.params, model.tokenizer, r.adapter, model.config.nPositions, grammars[i]),
  );
  const index = new Map(seqs.map((s, i) => [s, i]));
  try {
    const first = await decoder.add(seqs);
    for (const [i, out] of first.entries()) yield { index: i, ...out };
    decoder.removeFinished();
    while (decoder.size > 0) {
      if (signal?.aborted) {
        for (const s of decoder.rows) s.cancel();
        break;
      }
      const rows = decoder.rows;
      const outs = await decoder.step();
      for (const [b, out] of outs.entries()) yield { index: index.get(rows[b])!, ...out };
      decoder.removeFinished();
    }
  } finally {
    decoder.dispose();
    for (const s of seqs) s.release();
  }
}

/**
 * The grammar a sequence with `params` decodes under (a new matcher: the
 * sequence owns it), or undefined for free text. Its stop tokens are the
 * sequence's EOS ids.
 * @throws InvalidArgument when the response format's schema cannot be used.
 */
export function sequenceGrammar(model: GptModel, params: SamplingParams): Promise<GrammarConstraint | undefined> {
  if (!isConstrained(params.responseFormat)) return Promise.resolve(undefined);
  return model.grammars.constraint(params.responseFormat, params.eosIds ?? [model.tokenizer.eosId]);
}

/** Convenience: the full text and ids of each request, generated together. */
export async function generateText(model: GptModel, requests: GenerationRequest[]): Promise<{ text: string; ids: number[]; finishReason?: string }[]> {
  const out = requests.map(() => ({ text: '', ids: [] as number[], finishReason: undefined as string | undefined }));
  for await (const e of generate(model, requests)) {
    out[e.index].text += e.text;
    out[e.index].ids.push(e.tokenId);
    if (e.finishReason) out[e.index].finishReason = e.finishReason;
  }
  return out;
}
