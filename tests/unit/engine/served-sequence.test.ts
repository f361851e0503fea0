/**
 * What a served request reports, as generate.proto documents it: the token
 * that ends a generation with EOS is sent (its id in `token_ids`, no text)
 * and counted in usage.generated_tokens; logprobs are of the model's raw
 * distribution, whatever the sampling settings do to the logits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { GenerateChunk } from '../../../src/engine/engine-api.js';
import { ServedRequest, ServedSequence } from '../../../src/engine/served-sequence.js';
import { logSoftmaxAt } from '../../../src/model/generation/logits-processors.js';
import type { SamplingParams } from '../../../src/model/generation/sampling-params.js';
import { byteTokenizer } from '../../helpers/byte-tokenizer.js';
import { DEFAULT_SAMPLING } from '../../helpers/default-sampling.js';

const tokenizer = byteTokenizer();
const EOS = tokenizer.eosId;
const VOCAB = EOS + 1;

/** A logits row whose largest entries are `top` (in that order), the rest -5. */
function row(top: number[]): Float32Array {
  const r = new Float32Array(VOCAB).fill(-5);
  top.forEach((id, i) => (r[id] = 3 - i));
  return r;
}

/** Feeds one logits row per step until the sequence ends; returns every chunk sent. */
async function serve(rows: Float32Array[], params: Partial<SamplingParams>, topN = 0): Promise<GenerateChunk[]> {
  const seq = new ServedSequence([104, 105], { ...DEFAULT_SAMPLING, temperature: 0, logprobs: true, ...params }, tokenizer, { key: '' }, 1024, topN);
  const served = new ServedRequest('r', seq, new AbortController().signal, '', undefined, tokenizer, true);
  for (const r of rows) {
    served.deliver(seq.accept(r.slice()));
    if (seq.finished) break;
  }
  served.close();
  const chunks: GenerateChunk[] = [];
  for (let c = await served.out.next(); !c.done; c = await served.out.next()) chunks.push(c.value);
  return chunks;
}

test('the EOS token that ends a generation is sent and counted in generated_tokens', async () => {
  const chunks = await serve([row([111]), row([107]), row([EOS])], {});
  const last = chunks.at(-1)!;
  assert.equal(last.finish?.reason, 'eos');
  const sent = chunks.flatMap((c) => c.tokenIds);
  assert.deepEqual(sent, [111, 107, EOS]);
  assert.equal(last.finish!.usage.generatedTokens, sent.length);
  assert.equal(chunks.map((c) => c.text).join(''), 'ok', 'the EOS token adds no text');
});

test('logprobs and top_logprobs are of the raw distribution: temperature, top-k and penalties leave them unchanged', async () => {
  const rows = [row([111, 107, 120]), row([107, 111, 120])];
  // Both settings pick the argmax (greedy; top_k 1), so the same tokens are scored.
  const greedy = await serve(rows, { temperature: 0, maxNewTokens: 2 }, 3);
  const processed = await serve(rows, { temperature: 0.25, topK: 1, repetitionPenalty: 1.5, presencePenalty: 1, seed: 1, maxNewTokens: 2 }, 3);
  const lp = (chunks: GenerateChunk[]) => chunks.flatMap((c) => c.logprobs ?? []);
  assert.deepEqual(lp(processed).map((l) => l.tokenId), [111, 107]);
  assert.deepEqual(lp(processed), lp(greedy));
  assert.ok(Math.abs(lp(greedy)[0]!.logprob - logSoftmaxAt(rows[0]!, 111)) < 1e-6);
  assert.deepEqual(lp(greedy)[0]!.topLogprobs.map((t) => t.tokenId), [111, 107, 120]);
  for (const t of lp(greedy)[0]!.topLogprobs) assert.ok(Math.abs(t.logprob - logSoftmaxAt(rows[0]!, t.tokenId)) < 1e-6);
});
