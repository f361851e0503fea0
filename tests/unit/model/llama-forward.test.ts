import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import * as tf from '@tensorflow/tfjs';
import { forward, type ForwardInput } from '../../../src/model/gpt.js';
import { createKvCache, KvCache } from '../../../src/model/kv-cache.js';
import { disposeWeights, type LlamaWeights, weightsFromHost } from '../../../src/model/gpt-weights.js';
import type { LlamaConfig } from '../../../src/model/gpt-config.js';
import { readModelFolder } from '../../../src/model/checkpoint/hf-model-folder.js';
import { llamaReferenceLogits } from '../../reference/numpy-reference.js';
import { testBackend } from '../../helpers/tiny-model.js';
import { byteTokenizer } from '../../helpers/byte-tokenizer.js';
import { GptModel } from '../../../src/model/gpt-model.js';
import { generateText } from '../../../src/model/generation/generate.js';
import type { SamplingParams } from '../../../src/model/generation/sampling-params.js';
import { DEFAULT_SAMPLING } from '../../helpers/default-sampling.js';
import { LLAMA3_LIKE, llamaModelFolder, QWEN2_LIKE, QWEN3_LIKE, SMOLLM2_LIKE, type HfConfigJson } from '../../helpers/llama-model.js';

// Each shape's forward pass (full, token-by-token through the KV cache, and
// left-padded batches) against the numpy reference written from transformers'
// modeling files (tests/reference/llama_reference.py).

const TOL = 1e-4;
const SHAPES: [string, HfConfigJson][] = [
  ['SmolLM2-like (llama, GQA 9/3, tied)', SMOLLM2_LIKE],
  ['Qwen3-like (head_dim != hidden/heads, q/k norm)', QWEN3_LIKE],
  ['Llama-3-like (llama3 rope scaling, untied head)', LLAMA3_LIKE],
  ['Qwen2-like (q/k/v bias, linear rope scaling)', QWEN2_LIKE],
];

interface Loaded {
  dir: string;
  config: LlamaConfig;
  weights: LlamaWeights;
}
const models = new Map<HfConfigJson, Loaded>();

before(async () => {
  await testBackend();
  for (const [, json] of SHAPES) {
    const dir = await llamaModelFolder(json, 17);
    const ckpt = await readModelFolder(dir);
    assert.equal(ckpt.config.family, 'llama');
    const config = ckpt.config as LlamaConfig;
    models.set(json, { dir, config, weights: weightsFromHost(config, ckpt.tensors) });
  }
});

after(async () => {
  for (const m of models.values()) {
    disposeWeights(m.weights);
    await rm(m.dir, { recursive: true, force: true });
  }
});

function rowInput(ids: number[], start = 0): ForwardInput {
  return {
    batch: 1,
    length: ids.length,
    ids: Int32Array.from(ids),
    positions: Int32Array.from(ids, (_, i) => start + i),
    valid: new Uint8Array(ids.length).fill(1),
  };
}

/** max |a - b| over two [rows][vocab] arrays (b may be longer: a is compared with its first rows). */
function maxDiff(a: ArrayLike<number>, b: number[][], vocab: number): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[Math.floor(i / vocab)][i % vocab]));
  return m;
}

async function take(t: tf.Tensor): Promise<Float32Array> {
  const data = (await t.data()) as Float32Array;
  t.dispose();
  return data;
}

/** Seeded ids in [0, vocab). */
function ids(n: number, vocab: number, seed: number): number[] {
  return Array.from({ length: n }, (_, i) => (seed * 7919 + i * 104729) % vocab);
}

for (const [label, json] of SHAPES) {
  test(`${label}: full forward, token-by-token decode and a left-padded batch agree with the numpy reference to ${TOL}`, async () => {
    const { dir, config, weights } = models.get(json)!;
    const V = config.vocabSize;
    const long = ids(24, V, 1);
    const short = ids(9, V, 2);
    const [refLong, refShort] = await llamaReferenceLogits(dir, [long, short]);
    // The logits move with the tokens (the comparison is not of near-constants).
    assert.ok(Math.abs(refLong[3][0] - refLong[20][0]) > 1e-2, 'rows differ');
    const before = tf.memory().numTensors;

    const full = await take(forward(config, weights, rowInput(long)));
    const fullDiff = maxDiff(full, refLong, V);
    assert.ok(fullDiff < TOL, `full forward: max |ours - numpy| = ${fullDiff}`);

    // Decode: a prefill of 5 tokens, then one token per step, positions continuing; on either cache.
    for (const kind of ['tensor', 'paged'] as const) {
      const cache = createKvCache(config, 1, kind);
      const steps = [await take(forward(config, weights, rowInput(long.slice(0, 5)), { cache }))];
      for (let t = 5; t < long.length; t++) steps.push(await take(forward(config, weights, rowInput([long[t]], t), { cache })));
      cache.dispose();
      const decoded = Float32Array.from(steps.flatMap((s) => Array.from(s)));
      const decodeDiff = maxDiff(decoded, refLong, V);
      assert.ok(decodeDiff < TOL, `${kind} KV-cache decode: max |ours - numpy| = ${decodeDiff}`);
      const selfDiff = decoded.reduce((m, x, i) => Math.max(m, Math.abs(x - full[i])), 0);
      assert.ok(selfDiff < 1e-5, `${kind} decode vs full forward: ${selfDiff}`);
    }

    // Left-padded batch of the two rows (the short one padded), then a decode step for both through the cache.
    const T = long.length;
    const pad = T - short.length;
    const batch: ForwardInput = {
      batch: 2,
      length: T,
      ids: Int32Array.from([...long, ...new Array(pad).fill(0), ...short]),
      positions: Int32Array.from([...long.map((_, i) => i), ...new Array(pad).fill(0), ...short.map((_, i) => i)]),
      valid: Uint8Array.from([...long.map(() => 1), ...new Array(pad).fill(0), ...short.map(() => 1)]),
    };
    const batchCache = new KvCache(2);
    const padded = await take(forward(config, weights, batch, { cache: batchCache }));
    const rowDiff = Math.max(maxDiff(padded.subarray(0, T * V), refLong, V), maxDiff(padded.subarray((T + pad) * V), refShort, V));
    assert.ok(rowDiff < TOL, `left-padded batch: max |ours - numpy| = ${rowDiff}`);
    const next = [long[3], short[4]];
    const [refLongNext, refShortNext] = await llamaReferenceLogits(dir, [[...long, next[0]], [...short, next[1]]]);
    const step: ForwardInput = { batch: 2, length: 1, ids: Int32Array.from(next), positions: Int32Array.from([T, short.length]), valid: Uint8Array.from([1, 1]) };
    const stepped = await take(forward(config, weights, step, { cache: batchCache, output: 'last' }));
    batchCache.dispose();
    const stepDiff = Math.max(maxDiff(stepped.subarray(0, V), [refLongNext[T]], V), maxDiff(stepped.subarray(V), [refShortNext[short.length]], V));
    assert.ok(stepDiff < TOL, `padded batch decode step: max |ours - numpy| = ${stepDiff}`);

    assert.equal(tf.memory().numTensors, before, 'every tensor of the passes and caches is freed');
  });
}

test('greedy generation through the batch decoder (its `auto` cache, paged on host backends) follows the numpy argmax, batched as alone', async () => {
  const { dir, config, weights } = models.get(SMOLLM2_LIKE)!;
  const model = new GptModel(config, weights, byteTokenizer(), 'smollm2-like'); // not disposed: after() frees the weights
  const greedy: SamplingParams = { ...DEFAULT_SAMPLING, temperature: 0, maxNewTokens: 10, stopAtEos: false };
  const prompts = [model.tokenizer.encode('Hello'), model.tokenizer.encode('The whale')];
  const before = tf.memory().numTensors;
  const together = await generateText(model, prompts.map((promptIds) => ({ promptIds, params: greedy })));
  for (const [i, promptIds] of prompts.entries()) {
    const [alone] = await generateText(model, [{ promptIds, params: greedy }]);
    assert.deepEqual(together[i].ids, alone.ids, `prompt ${i}: batched = alone`);
    const [ref] = await llamaReferenceLogits(dir, [[...promptIds, ...alone.ids]]);
    alone.ids.forEach((id, t) => {
      const row = ref[promptIds.length - 1 + t];
      assert.ok(row[id] >= Math.max(...row) - TOL, `prompt ${i} step ${t}: token ${id} is the numpy argmax`);
    });
  }
  assert.equal(tf.memory().numTensors, before);
});

test('forward refuses what the Llama family does not have yet instead of half applying it', async () => {
  const { config, weights } = models.get(QWEN3_LIKE)!;
  const before = tf.memory().numTensors;
  const input = rowInput([1, 2, 3]);
  assert.throws(() => forward(config, weights, input, { trainEmbeddings: true }), /training the embeddings is not implemented for Llama-family models/);
  assert.equal(tf.memory().numTensors, before);
});
