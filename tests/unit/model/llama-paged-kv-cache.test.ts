import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { forward, type ForwardInput } from '../../../src/model/gpt.js';
import { concatKvCaches, createKvCache, type DecodeCache, type KvCacheKind, pagedCacheApplies } from '../../../src/model/kv-cache.js';
import { PagedKvCache } from '../../../src/model/paged-kv-cache.js';
import { kvArenaFor, PAGE_TOKENS } from '../../../src/model/kernels/kv-arena.js';
import { attentionHeads } from '../../../src/model/attention-heads.js';
import { disposeWeights, type LlamaWeights, weightsFromHost } from '../../../src/model/gpt-weights.js';
import type { LlamaConfig } from '../../../src/model/gpt-config.js';
import { BatchDecoder } from '../../../src/model/generation/batch-decoder.js';
import { GenerationSequence } from '../../../src/model/generation/generation-sequence.js';
import { DEFAULT_SAMPLING } from '../../helpers/default-sampling.js';
import { byteTokenizer } from '../../helpers/byte-tokenizer.js';
import { testBackend } from '../../helpers/tiny-model.js';
import { LLAMA3_LIKE, llamaConfig, llamaTensors, QWEN3_LIKE, SMOLLM2_LIKE, type HfConfigJson } from '../../helpers/llama-model.js';

/** Real tokens a row of either cache holds: the paged cache counts them; the tensor cache's validity mask says. */
const heldTokens = (cache: DecodeCache, row: number): number =>
  cache instanceof PagedKvCache ? cache.tokens(row) : cache.valid[row]!.reduce((n, v) => n + v, 0);

// The paged KV cache (kernels/attention.wat) with the Llama family's
// grouped-query heads, head_dim != hidden / heads (Qwen3) and keys cached
// after their rotary positions: the GPT-2 versions are paged-kv-cache.test.ts.

const SHAPES: [string, HfConfigJson][] = [
  ['SmolLM2-like (9 query heads over 3 key/value heads of 64)', SMOLLM2_LIKE],
  ['Qwen3-like (4 x 64 query channels over width 128, q/k norm)', QWEN3_LIKE],
  ['Llama-3-like (8 over 2 heads, llama3 rope scaling)', LLAMA3_LIKE],
];

const models = new Map<HfConfigJson, { config: LlamaConfig; weights: LlamaWeights }>();

before(async () => {
  await testBackend();
  for (const [, json] of SHAPES) {
    const config = llamaConfig(json);
    models.set(json, { config, weights: weightsFromHost(config, llamaTensors(json, 23)) });
  }
});

after(() => {
  for (const m of models.values()) disposeWeights(m.weights);
});

const arenaOf = (config: LlamaConfig) => kvArenaFor(attentionHeads(config), config.nPositions);

/** Rows of different lengths, left-padded to the longest, row b's positions starting at `starts[b]`. */
function batchInput(rows: number[][], starts: number[] = rows.map(() => 0)): ForwardInput {
  const length = Math.max(...rows.map((r) => r.length));
  const n = rows.length * length;
  const input: ForwardInput = { batch: rows.length, length, ids: new Int32Array(n), positions: new Int32Array(n), valid: new Uint8Array(n) };
  rows.forEach((ids, b) => {
    const pad = length - ids.length;
    ids.forEach((id, j) => {
      input.ids[b * length + pad + j] = id;
      input.positions[b * length + pad + j] = starts[b] + j;
      input.valid[b * length + pad + j] = 1;
    });
  });
  return input;
}

async function run(config: LlamaConfig, weights: LlamaWeights, input: ForwardInput, cache?: DecodeCache, output: 'logits' | 'last' = 'last'): Promise<Float32Array> {
  const logits = forward(config, weights, input, { cache, output });
  const data = (await logits.data()) as Float32Array;
  logits.dispose();
  return data;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const ids = (n: number, vocab: number, seed: number) => Array.from({ length: n }, (_, i) => (i * 37 + seed * 11) % vocab);

test('auto picks the paged cache for these shapes on host backends', () => {
  const host = ['wasm', 'cpu'].includes(tf.getBackend());
  for (const [label, json] of SHAPES) {
    const { config } = models.get(json)!;
    assert.equal(pagedCacheApplies(config), host, label);
    const cache = createKvCache(config, 1);
    assert.equal(cache instanceof PagedKvCache, host, label);
    cache.dispose();
  }
});

for (const [label, json] of SHAPES) {
  test(`${label}: decoding past 3 pages on the paged cache gives the logits of the full forward pass to 1e-4`, async () => {
    const { config, weights } = models.get(json)!;
    const V = config.vocabSize;
    const seq = ids(3 * PAGE_TOKENS + 5, V, 1);
    // Causal: row t of one full pass is the logits after seq[0..t].
    const full = await run(config, weights, batchInput([seq]), undefined, 'logits');
    const tensors = tf.memory().numTensors;
    const pages = arenaOf(config).pagesInUse;
    const cache = createKvCache(config, 1, 'paged');
    const got = [...(await run(config, weights, batchInput([seq.slice(0, 8)]), cache))];
    for (let t = 8; t < seq.length; t++) got.push(...(await run(config, weights, batchInput([[seq[t]]], [t]), cache)));
    assert.equal(heldTokens(cache, 0), seq.length);
    assert.equal(arenaOf(config).pagesInUse - pages, config.nLayer * 4, 'four pages per layer for 53 tokens');
    cache.dispose();
    const diff = maxAbsDiff(got, full.subarray(7 * V));
    assert.ok(diff < 1e-4, `max |paged decode - full forward| = ${diff}`);
    // The comparison is not of near-constants: the logits move with the tokens.
    assert.ok(Math.abs(full[10 * V] - full[40 * V]) > 1e-2);
    assert.equal(arenaOf(config).pagesInUse, pages, 'every page comes back');
    assert.equal(tf.memory().numTensors, tensors, 'tensors left behind');
  });

  test(`${label}: a left-padded batch decodes on pages as on the tensor cache while rows leave and regroup, and every page comes back`, async () => {
    const { config, weights } = models.get(json)!;
    const V = config.vocabSize;
    const prompts = [ids(3, V, 1), ids(20, V, 2), ids(9, V, 3)];
    const pages = arenaOf(config).pagesInUse;
    const tensors = tf.memory().numTensors;
    const out: Record<string, number[]> = {};
    for (const kind of ['paged', 'tensor'] as KvCacheKind[]) {
      let cache = createKvCache(config, 3, kind);
      assert.equal(cache instanceof PagedKvCache, kind === 'paged');
      const logits: number[] = Array.from(await run(config, weights, batchInput(prompts), cache));
      let rows = prompts.map((p) => p.length);
      for (let step = 0; step < 24; step++) {
        if (step === 10) {
          // Row 0 leaves, the others swap places (select, then free the old cache).
          const next = cache.select([2, 1]);
          cache.dispose();
          cache = next;
          rows = [rows[2], rows[1]];
        }
        if (step === 16) {
          // A new row joins (prefilled on its own cache) and takes the front.
          const joining = createKvCache(config, 1, kind);
          logits.push(...(await run(config, weights, batchInput([ids(5, V, 4)]), joining)));
          const next = concatKvCaches([joining, cache]);
          cache.dispose();
          joining.dispose();
          cache = next;
          rows = [5, ...rows];
        }
        const tokens = rows.map((_, b) => [(step * 7 + b) % V]);
        logits.push(...(await run(config, weights, batchInput(tokens, rows), cache)));
        rows = rows.map((n) => n + 1);
      }
      assert.deepEqual(rows.map((_, b) => heldTokens(cache, b)), rows);
      cache.dispose();
      out[kind] = logits;
    }
    const diff = maxAbsDiff(out.paged, out.tensor);
    assert.ok(diff < 1e-4, `max |paged - tensor| = ${diff}`);
    assert.equal(arenaOf(config).pagesInUse, pages, 'pages in use after dispose');
    assert.equal(tf.memory().numTensors, tensors, 'tensors left behind');
  });
}

test('the batch decoder keeps a Llama-family batch on pages by default and gives them all back', async () => {
  const { config, weights } = models.get(SMOLLM2_LIKE)!;
  const tokenizer = byteTokenizer();
  const arena = arenaOf(config);
  const pages = arena.pagesInUse;
  const decoder = new BatchDecoder({ config, weights });
  const params = { ...DEFAULT_SAMPLING, temperature: 0, maxNewTokens: 40, stopAtEos: false };
  await decoder.add([new GenerationSequence(ids(10, 257, 1), params, tokenizer), new GenerationSequence(ids(30, 257, 2), params, tokenizer)]);
  // 10 and 30 tokens: 1 and 2 pages per layer.
  assert.equal(arena.pagesInUse - pages, 3 * config.nLayer, 'pages held after the prefill');
  // Each step appends the last sampled token: 18 and 38 tokens, 2 and 3 pages.
  for (let s = 0; s < 8; s++) await decoder.step();
  assert.equal(arena.pagesInUse - pages, 5 * config.nLayer, 'both rows grew a page');
  decoder.dispose();
  assert.equal(arena.pagesInUse, pages, 'every page comes back');
});
