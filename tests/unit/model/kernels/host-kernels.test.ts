import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { rmsNorm } from '../../../../src/model/layers.js';
import { applyRotary, rotaryTables } from '../../../../src/model/rotary.js';
import { forward } from '../../../../src/model/gpt.js';
import { onHostBackend } from '../../../../src/model/kernels/host-memory.js';
import { HOST_RMS_NORM_MAX_ELEMENTS, hostRmsNorm } from '../../../../src/model/kernels/host-kernels.js';
import { disposeWeights, weightsFromHost } from '../../../../src/model/gpt-weights.js';
import { Rng } from '../../../../src/common/rng.js';
import { testBackend } from '../../../helpers/tiny-model.js';
import { LLAMA3_LIKE, llamaConfig, llamaTensors, QWEN3_LIKE, SMOLLM2_LIKE } from '../../../helpers/llama-model.js';

// The Llama family's fused host kernels (host-kernels.ts) against the generic
// tfjs ops they replace, which are what runs while a gradient is recorded.

before(async () => {
  await testBackend();
});

/** `f`'s result on the generic path: run inside a gradient tape, where the model code never takes a host kernel. */
function generic<T extends tf.Tensor>(f: () => T): T {
  let out: T | undefined;
  const x = tf.scalar(0);
  const dx = tf.grad((x: tf.Tensor) => {
    out = tf.keep(f());
    return tf.sum(x);
  })(x);
  dx.dispose();
  x.dispose();
  return out!;
}

/** Kernel names a call runs (tf.profile), with counts. */
async function kernels(f: () => tf.Tensor): Promise<Map<string, number>> {
  const p = await tf.profile(() => f());
  const names = new Map<string, number>();
  for (const k of p.kernels) names.set(k.name, (names.get(k.name) ?? 0) + 1);
  (p.result as tf.Tensor).dispose();
  return names;
}

/**
 * max |a - b| / max(1, |b|): absolute for outputs up to 1, relative above
 * (RMSNorm outputs reach ~5, where float32's ulp is 5e-7). On wasm both
 * kernels match the generic ops exactly; on cpu the generic Mean sums in
 * float64, 2e-6 from wasm's float32 sum at |x| ~ 4 (5e-7 relative).
 */
async function maxDiff(a: tf.Tensor, b: tf.Tensor): Promise<number> {
  assert.deepEqual(a.shape, b.shape);
  const [x, y] = [await a.data(), await b.data()];
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]) / Math.max(1, Math.abs(y[i])));
  return m;
}

const normal = (shape: number[], seed: number, scale = 1, offset = 0) => {
  const rng = new Rng(seed);
  return tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => offset + scale * rng.normal()), shape);
};

test('the RMSNorm kernel equals the generic ops to 1e-6, and rmsNorm runs it (one kernel) on up to HOST_RMS_NORM_MAX_ELEMENTS', async (t) => {
  if (!onHostBackend()) return t.skip('host backends only');
  const before = tf.memory().numTensors;
  // Model rows (SmolLM2's width), per-head rows (Qwen3's q_norm over head_dim), large and small values, both sides of the size limit.
  for (const [shape, eps, scale] of [[[1, 576], 1e-5, 1], [[16, 576], 1e-5, 3], [[5, 4, 64], 1e-6, 0.01], [[3, 7, 128], 1e-6, 20]] as [number[], number, number][]) {
    const x = normal(shape, shape[0], scale);
    const w = { weight: normal([shape[shape.length - 1]], 9, 0.1, 1) as tf.Tensor1D };
    const host = hostRmsNorm(x, w.weight, eps);
    const ref = generic(() => rmsNorm(x, w, eps));
    const diff = await maxDiff(host, ref);
    assert.ok(diff < 1e-6, `[${shape}], eps ${eps}, scale ${scale}: max |host - generic| / max(1, |generic|) = ${diff}`);
    assert.ok(Math.max(...Array.from(await ref.data(), Math.abs)) > 0.5, 'outputs of order 1');
    const names = await kernels(() => rmsNorm(x, w, eps));
    if (x.size <= HOST_RMS_NORM_MAX_ELEMENTS) assert.deepEqual([...names.keys()], ['GentuneRmsNorm'], `[${shape}]`);
    else assert.ok(!names.has('GentuneRmsNorm') && names.has('Rsqrt'), `[${shape}]: the generic ops`);
    for (const tensor of [x, w.weight, host, ref]) tensor.dispose();
  }
  assert.equal(tf.memory().numTensors, before);
});

test('the rotary embedding is one kernel on host backends and equals the generic ops to 1e-6', async (t) => {
  if (!onHostBackend()) return t.skip('host backends only');
  const before = tf.memory().numTensors;
  // Far positions too (angles of thousands of radians), llama3-scaled frequencies, head_dim 64 and 16.
  for (const [json, heads] of [[SMOLLM2_LIKE, 9], [LLAMA3_LIKE, 2], [QWEN3_LIKE, 4]] as const) {
    const config = llamaConfig(json);
    const positions = Int32Array.from([0, 1, 2, 17, 63, 64, 500, 8000]);
    const tables = rotaryTables(config, positions);
    const x = normal([positions.length, heads, config.headDim], heads) as tf.Tensor3D;
    const host = applyRotary(x, tables);
    const ref = generic(() => applyRotary(x, tables));
    const diff = await maxDiff(host, ref);
    assert.ok(diff < 1e-6, `${config.modelType} ${heads} x ${config.headDim}: max |host - generic| / max(1, |generic|) = ${diff}`);
    // Position 0 turns nothing; the others do.
    const [rotated, plain] = [await host.data(), await x.data()];
    const row = heads * config.headDim;
    const moved = (r: number) => Math.max(...Array.from({ length: row }, (_, i) => Math.abs(rotated[r * row + i] - plain[r * row + i])));
    assert.ok(moved(0) < 1e-7 && moved(3) > 0.1, `position 0 moved ${moved(0)}, position 17 ${moved(3)}`);
    const names = await kernels(() => applyRotary(x, tables));
    assert.deepEqual([...names.keys()], ['GentuneRotary']);
    for (const tensor of [x, host, ref, tables.cos, tables.sin]) tensor.dispose();
  }
  assert.equal(tf.memory().numTensors, before);
});

test('a Llama-family forward pass on a host backend runs them in every block (and none of the ops they replace), and plain matMuls', async (t) => {
  if (!onHostBackend()) return t.skip('host backends only');
  for (const json of [SMOLLM2_LIKE, QWEN3_LIKE]) {
    const config = llamaConfig(json);
    const weights = weightsFromHost(config, llamaTensors(json, 3));
    const ids = Int32Array.from([5, 9, 2, 7]);
    const input = { batch: 1, length: ids.length, ids, positions: Int32Array.from(ids, (_, i) => i), valid: new Uint8Array(ids.length).fill(1) };
    const names = await kernels(() => forward(config, weights, input));
    const L = config.nLayer;
    // Two norms per block and the final one; Qwen3 adds one per query and key projection (4 tokens: under the size limit).
    assert.equal(names.get('GentuneRmsNorm'), 2 * L + 1 + (config.qkNorm ? 2 * L : 0), config.modelType);
    assert.equal(names.get('GentuneRotary'), 2 * L, config.modelType);
    for (const replaced of ['Rsqrt', 'Square', 'Mean', 'SplitV', 'Neg', 'Concat']) assert.equal(names.get(replaced), undefined, `${config.modelType}: ${replaced}`);
    // Bias-free projections (these shapes have none) are plain matMuls, without the fused op's wrapper:
    // 7 a block, 2 for attention without a cache, and the LM head.
    assert.equal(names.get('BatchMatMul'), 9 * L + 1, config.modelType);
    assert.equal(names.get('_FusedMatMul'), undefined, config.modelType);
    disposeWeights(weights);
  }
});
