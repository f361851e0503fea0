import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { clipByGlobalNorm } from '../../../src/training/grad-clip.js';
import { testBackend } from '../../helpers/tiny-model.js';

before(async () => {
  await testBackend();
});

test('the global norm covers every gradient, and clipping scales them all by max/(norm+1e-6)', async () => {
  const grads = [tf.tensor1d([3, 0]), tf.tensor2d([[0, 4]]), tf.tensor1d([12])]; // norm 13
  const { grads: clipped, norm } = clipByGlobalNorm(grads, 1);
  assert.ok(Math.abs((await norm.data())[0] - 13) < 1e-5);
  const scale = 1 / (13 + 1e-6);
  const flat = (await Promise.all(clipped.map((g) => g.data()))).flatMap((d) => Array.from(d));
  [3, 0, 0, 4, 12].forEach((x, i) => assert.ok(Math.abs(flat[i] - x * scale) < 1e-6, `${flat[i]} vs ${x * scale}`));
  tf.dispose([...grads, ...clipped, norm]);
});

test('gradients under the limit, or with clipping off, pass unchanged', async () => {
  const grads = [tf.tensor1d([0.3, -0.4])]; // norm 0.5
  for (const maxNorm of [1, 0, Infinity]) {
    const { grads: out, norm } = clipByGlobalNorm(grads, maxNorm);
    assert.deepEqual(Array.from(await out[0].data()), Array.from(await grads[0].data()));
    assert.ok(Math.abs((await norm.data())[0] - 0.5) < 1e-6);
    tf.dispose([...out, norm]);
  }
  tf.dispose(grads);
});
