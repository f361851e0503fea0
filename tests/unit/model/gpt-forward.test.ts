import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { forward, type ForwardInput } from '../../../src/model/gpt.js';
import { KvCache } from '../../../src/model/kv-cache.js';
import { disposeWeights, weightsFromHost } from '../../../src/model/gpt-weights.js';
import { readGpt2Folder } from '../../../src/model/checkpoint/hf-gpt2-folder.js';
import { referenceLogits } from '../../reference/numpy-reference.js';
import { testBackend, TINY, tinyModelFolder, tinyWeights } from '../../helpers/tiny-model.js';

before(async () => {
  await testBackend();
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

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

test('logits agree with the independent numpy GPT-2 to 1e-4 (gelu_new and gelu)', async () => {
  for (const activationFunction of ['gelu_new', 'gelu'] as const) {
    const config = { ...TINY, activationFunction };
    const dir = await tinyModelFolder(config, 7);
    const ckpt = await readGpt2Folder(dir);
    const weights = weightsFromHost(ckpt.config, ckpt.tensors);
    const ids = [72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 256, 3];
    const logits = forward(ckpt.config, weights, rowInput(ids));
    const ours = await logits.data();
    const ref = (await referenceLogits(dir, ids)).flat();
    logits.dispose();
    disposeWeights(weights);
    const diff = maxAbsDiff(ours, ref);
    assert.ok(diff < 1e-4, `${activationFunction}: max |ours - numpy| = ${diff}`);
  }
});

test('KV-cache decode gives the same logits as a full forward pass', async () => {
  const weights = tinyWeights(TINY, 3);
  const ids = [5, 17, 200, 33, 9, 120, 64, 1, 250, 77];
  const full = forward(TINY, weights, rowInput(ids));
  const fullData = await full.data();
  full.dispose();
  const cache = new KvCache(1);
  const prefill = forward(TINY, weights, rowInput(ids.slice(0, 4)), { cache });
  const parts = [await prefill.data()];
  prefill.dispose();
  for (let t = 4; t < ids.length; t++) {
    const step = forward(TINY, weights, rowInput([ids[t]], t), { cache });
    parts.push(await step.data());
    step.dispose();
  }
  cache.dispose();
  disposeWeights(weights);
  const incremental = Float32Array.from(parts.flatMap((p) => Array.from(p)));
  assert.ok(maxAbsDiff(incremental, fullData) < 1e-4);
});

test('left-padded batch rows equal the same rows run alone', async () => {
  const weights = tinyWeights(TINY, 4);
  const a = [10, 20, 30, 40, 50, 60];
  const b = [7, 8, 9];
  const T = a.length;
  const input: ForwardInput = {
    batch: 2,
    length: T,
    ids: Int32Array.from([...a, 0, 0, 0, ...b]),
    positions: Int32Array.from([0, 1, 2, 3, 4, 5, 0, 0, 0, 0, 1, 2]),
    valid: Uint8Array.from([1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1]),
  };
  const batched = forward(TINY, weights, input, { output: 'last' });
  const both = await batched.data();
  batched.dispose();
  for (const [row, ids] of [a, b].entries()) {
    const alone = forward(TINY, weights, rowInput(ids), { output: 'last' });
    const one = await alone.data();
    alone.dispose();
    const V = TINY.vocabSize;
    assert.ok(maxAbsDiff(both.subarray(row * V, (row + 1) * V), one) < 1e-4, `row ${row}`);
  }
  disposeWeights(weights);
});

test('a forward pass leaves no tensor behind', async () => {
  const weights = tinyWeights(TINY, 5);
  const before = tf.memory().numTensors;
  for (let i = 0; i < 5; i++) forward(TINY, weights, rowInput([1, 2, 3, 4])).dispose();
  assert.equal(tf.memory().numTensors, before);
  disposeWeights(weights);
});

test('rows outside every LoRA segment run on the base model', async () => {
  const { initLoraAdapter } = await import('../../../src/model/adapter-init.js');
  const { disposeAdapter } = await import('../../../src/model/adapter.js');
  const weights = tinyWeights(TINY, 6);
  const adapter = initLoraAdapter(TINY, { r: 4, loraAlpha: 8, loraDropout: 0, targetModules: ['attn.c_attn', 'mlp.c_fc'], useRslora: false }, { seed: 3, init: false });
  const ids = [4, 8, 15, 16, 23, 42];
  const input: ForwardInput = { batch: 3, length: 2, ids: Int32Array.from(ids), positions: Int32Array.from([0, 1, 0, 1, 0, 1]), valid: new Uint8Array(6).fill(1) };
  const base = forward(TINY, weights, input, { output: 'last' });
  const mixed = forward(TINY, weights, input, { output: 'last', segments: [{ start: 1, count: 1, lora: adapter.lora }] });
  const [b, m] = [await base.data(), await mixed.data()];
  base.dispose();
  mixed.dispose();
  const V = TINY.vocabSize;
  assert.ok(maxAbsDiff(b.subarray(0, V), m.subarray(0, V)) < 1e-6, 'row 0 is base');
  assert.ok(maxAbsDiff(b.subarray(2 * V), m.subarray(2 * V)) < 1e-6, 'row 2 is base');
  assert.ok(maxAbsDiff(b.subarray(V, 2 * V), m.subarray(V, 2 * V)) > 1e-4, 'row 1 is adapted');
  disposeAdapter(adapter);
  disposeWeights(weights);
});

test('inference frees each block as it ends: peak memory does not grow with depth', async () => {
  const peak = async (nLayer: number) => {
    const config = { ...TINY, nLayer };
    const weights = tinyWeights(config, 4);
    const ids = Array.from({ length: 48 }, (_, i) => (i * 7) % TINY.vocabSize);
    const input: ForwardInput = {
      batch: 8,
      length: ids.length,
      ids: Int32Array.from({ length: 8 * ids.length }, (_, i) => ids[i % ids.length]),
      positions: Int32Array.from({ length: 8 * ids.length }, (_, i) => i % ids.length),
      valid: new Uint8Array(8 * ids.length).fill(1),
    };
    const before = tf.memory().numBytes;
    const info = await tf.profile(() => forward(config, weights, input, { output: 'last' }));
    tf.dispose(info.result as tf.Tensor);
    disposeWeights(weights);
    return info.peakBytes - before;
  };
  const [shallow, deep] = [await peak(2), await peak(8)];
  // Holding every block's activations made the peak grow ~4x from 2 to 8 layers.
  assert.ok(deep < 1.5 * shallow, `peak bytes: 2 layers ${shallow}, 8 layers ${deep}`);
});
