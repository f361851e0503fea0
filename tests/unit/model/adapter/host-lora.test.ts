import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { type Adapter, disposeAdapter } from '../../../../src/model/adapter.js';
import { initLoraAdapter } from '../../../../src/model/adapter-init.js';
import { groupedLoraDelta, loraDelta, type LoraTarget, type RowSegment } from '../../../../src/model/lora.js';
import { onHostBackend } from '../../../../src/model/kernels/host-memory.js';
import { testBackend, TINY } from '../../../helpers/tiny-model.js';
import { maxAbsDiff } from './peft-reference.js';

const ALL: LoraTarget[] = ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'];
let adapters: (Adapter & { kind: 'lora' })[];

before(async () => {
  await testBackend();
  // Ranks the kernel takes (multiples of 4), one rsLoRA, one adapting c_attn only, and one of rank 3.
  adapters = [4, 8, 12, 4, 3].map(
    (r, i) => initLoraAdapter(TINY, { r, loraAlpha: 2 * r + i, loraDropout: 0, targetModules: i === 3 ? ['attn.c_attn'] : ALL, useRslora: i === 1 }, { seed: 300 + i, init: false }) as Adapter & { kind: 'lora' },
  );
});

after(() => adapters.forEach(disposeAdapter));

/** Segments over the first `n` adapters with base rows between and a gap at the end. */
function segmentsOf(n: number): { segments: RowSegment[]; rows: number } {
  const segments: RowSegment[] = [];
  let row = 0;
  for (let i = 0; i < n; i++) {
    segments.push({ start: row, count: 1 + (i % 2), lora: adapters[i].lora });
    row += 1 + (i % 2);
    if (i === 1) segments.push({ start: row++, count: 1 });
  }
  return { segments, rows: row + 1 };
}

/** The delta by loraDelta and the kernels it ran. */
async function viaLoraDelta(x: tf.Tensor2D, key: string, segments: RowSegment[], T: number, out: number) {
  let kernels: string[] = [];
  const profile = await tf.profile(() => tf.tidy(() => loraDelta(x, key, segments, T, out) ?? tf.zeros([x.shape[0], out])));
  kernels = profile.kernels.map((k) => k.name);
  const t = profile.result as tf.Tensor;
  const data = (await t.data()) as Float32Array;
  t.dispose();
  return { data, kernels };
}

for (const T of [1, 3]) {
  test(`host LoRA kernel equals the per-adapter matMuls on a mixed batch (${T} token(s) per row), one kernel per projection`, async (t) => {
    if (!onHostBackend()) return t.skip('host backends only');
    const { segments, rows } = segmentsOf(4);
    for (const key of ['0.attn.c_attn', '1.attn.c_proj', '0.mlp.c_fc', '1.mlp.c_proj']) {
      const inDim = key.endsWith('mlp.c_proj') ? 4 * TINY.nEmbd : TINY.nEmbd;
      const out = key.endsWith('c_attn') ? 3 * TINY.nEmbd : key.endsWith('c_fc') ? 4 * TINY.nEmbd : TINY.nEmbd;
      const x = tf.randomNormal([rows * T, inDim], 0, 1, 'float32', 7) as tf.Tensor2D;
      const ref = tf.tidy(() => groupedLoraDelta(x, key, segments, T, out)!);
      const expected = (await ref.data()) as Float32Array;
      ref.dispose();
      const { data, kernels } = await viaLoraDelta(x, key, segments, T, out);
      x.dispose();
      assert.ok(kernels.includes('GentuneLoraDelta'), `${key}: ran ${kernels.join(',')}`);
      assert.ok(!kernels.includes('BatchMatMul'), `${key}: no matMul besides the kernel`);
      assert.ok(maxAbsDiff(data, expected) < 1e-5, `${key}: max diff ${maxAbsDiff(data, expected)}`);
    }
  });
}

test('a rank the kernel does not take (3) falls back to the stacked path, with the same result', async (t) => {
  if (!onHostBackend()) return t.skip('host backends only');
  const { segments, rows } = segmentsOf(5);
  const x = tf.randomNormal([rows, TINY.nEmbd], 0, 1, 'float32', 9) as tf.Tensor2D;
  const ref = tf.tidy(() => groupedLoraDelta(x, '0.attn.c_attn', segments, 1, 3 * TINY.nEmbd)!);
  const expected = (await ref.data()) as Float32Array;
  ref.dispose();
  const before = tf.memory().numTensors;
  const { data, kernels } = await viaLoraDelta(x, '0.attn.c_attn', segments, 1, 3 * TINY.nEmbd);
  assert.ok(!kernels.includes('GentuneLoraDelta'));
  assert.ok(maxAbsDiff(data, expected) < 1e-5);
  x.dispose();
  assert.ok(tf.memory().numTensors <= before);
});

test('a new adapter version is not served the weights the kernel copied for the old one', async (t) => {
  if (!onHostBackend()) return t.skip('host backends only');
  const key = '0.mlp.c_fc';
  const out = 4 * TINY.nEmbd;
  const x = tf.randomNormal([3, TINY.nEmbd], 0, 1, 'float32', 11) as tf.Tensor2D;
  for (const seed of [500, 501, 502]) {
    const v = initLoraAdapter(TINY, { r: 8, loraAlpha: 16, loraDropout: 0, targetModules: ALL, useRslora: false }, { seed, init: false }) as Adapter & { kind: 'lora' };
    const segments: RowSegment[] = [{ start: 0, count: 2, lora: v.lora }, { start: 2, count: 1, lora: adapters[1].lora }];
    const ref = tf.tidy(() => groupedLoraDelta(x, key, segments, 1, out)!);
    const expected = (await ref.data()) as Float32Array;
    ref.dispose();
    const { data, kernels } = await viaLoraDelta(x, key, segments, 1, out);
    assert.ok(kernels.includes('GentuneLoraDelta'));
    assert.ok(maxAbsDiff(data, expected) < 1e-5, `version ${seed}: max diff ${maxAbsDiff(data, expected)}`);
    disposeAdapter(v);
  }
  x.dispose();
});
