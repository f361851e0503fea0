import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../../src/common/rng.js';
import { collate } from '../../../src/training/data/collate.js';
import { gatherRows, lmHeadCrossEntropy, lmHeadEvalSums, lossRows, softmaxCrossEntropy } from '../../../src/training/sft-loss.js';
import { testBackend } from '../../helpers/tiny-model.js';

before(async () => {
  await testBackend();
});

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function randn(rng: Rng, shape: number[], scale = 1): tf.Tensor {
  return tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => scale * rng.normal()), shape);
}

/** tf's own weighted cross-entropy, summed and divided by `normalizer` (int32 one-hot, then cast: float32 oneHot is wrong on wasm). */
function referenceLoss(logits: tf.Tensor2D, targets: tf.Tensor1D, weights: tf.Tensor1D, normalizer: number): tf.Scalar {
  const onehot = tf.cast(tf.oneHot(targets, logits.shape[1]), 'float32');
  return tf.div(tf.losses.softmaxCrossEntropy(onehot, logits, weights, 0, tf.Reduction.SUM), normalizer) as tf.Scalar;
}

test('softmaxCrossEntropy and its gradient equal tf.losses.softmaxCrossEntropy under autodiff', async () => {
  const rng = new Rng(1);
  const logits = randn(rng, [6, 11], 3) as tf.Tensor2D;
  const targets = tf.tensor1d([0, 10, 3, 3, 7, 1], 'int32');
  const weights = tf.tensor1d([1, 0.5, 1, 2, 1, 0.25]);
  const ours = tf.valueAndGrad((z: tf.Tensor) => softmaxCrossEntropy(z as tf.Tensor2D, targets, weights, 4.75))(logits);
  const ref = tf.valueAndGrad((z: tf.Tensor) => referenceLoss(z as tf.Tensor2D, targets, weights, 4.75))(logits);
  assert.ok(Math.abs((await ours.value.data())[0] - (await ref.value.data())[0]) < 1e-5);
  assert.ok(maxAbsDiff(await ours.grad.data(), await ref.grad.data()) < 1e-6);
  tf.dispose([logits, targets, weights, ours.value, ours.grad, ref.value, ref.grad]);
});

test('the fused, chunked LM-head loss equals hidden @ wteT -> cross-entropy, value and gradient', async () => {
  const rng = new Rng(2);
  const vocab = 37;
  const d = 8;
  const hidden = randn(rng, [13, d]) as tf.Tensor2D;
  const wte = randn(rng, [vocab, d], 0.5) as tf.Tensor2D;
  const head = { wte, wteT: tf.transpose(wte) as tf.Tensor2D };
  const targets = tf.tensor1d(Array.from({ length: 13 }, (_, i) => (i * 5) % vocab), 'int32');
  const weights = tf.tensor1d(Array.from({ length: 13 }, (_, i) => 0.5 + (i % 3)));
  const ref = tf.valueAndGrad((h: tf.Tensor) => referenceLoss(tf.matMul(h as tf.Tensor2D, head.wteT), targets, weights, 20))(hidden);
  const refValue = (await ref.value.data())[0];
  const refGrad = await ref.grad.data();
  // One chunk, chunks of 3 rows (ragged last chunk), and one row at a time.
  for (const chunkElements of [1 << 20, 3 * vocab, 1]) {
    const loss = (h: tf.Tensor): tf.Scalar => lmHeadCrossEntropy(h as tf.Tensor2D, head, targets, weights, 20, { chunkElements });
    const ours = tf.valueAndGrad(loss)(hidden);
    assert.ok(Math.abs((await ours.value.data())[0] - refValue) < 1e-5, `value, chunkElements ${chunkElements}`);
    assert.ok(maxAbsDiff(await ours.grad.data(), refGrad) < 1e-6, `gradient, chunkElements ${chunkElements}`);
    tf.dispose([ours.value, ours.grad]);
  }
  tf.dispose([hidden, wte, head.wteT, targets, weights, ref.value, ref.grad]);
});

test('gatherRows picks rows, and its gradient adds repeated rows (ScatterNd, not UnsortedSegmentSum)', async () => {
  const x = tf.tensor2d([[1, 2], [3, 4], [5, 6], [7, 8]]);
  const rows = tf.tensor1d([3, 1, 3], 'int32');
  const upstream = tf.tensor2d([[1, 10], [100, 1000], [2, 20]]);
  const { value, grad } = tf.valueAndGrad((t: tf.Tensor) => tf.sum(tf.mul(gatherRows(t as tf.Tensor2D, rows), upstream)))(x);
  assert.equal((await value.data())[0], 7 + 80 + 300 + 4000 + 14 + 160);
  assert.deepEqual(Array.from(await grad.data()), [0, 0, 100, 1000, 0, 0, 3, 30]);
  tf.dispose([x, rows, upstream, value, grad]);
});

test('evaluation sums: weighted loss and weighted argmax hits, over several chunks', async () => {
  const rng = new Rng(3);
  const vocab = 9;
  const hidden = randn(rng, [7, 4]) as tf.Tensor2D;
  const wte = randn(rng, [vocab, 4]) as tf.Tensor2D;
  const wteT = tf.transpose(wte) as tf.Tensor2D;
  const logitsT = tf.matMul(hidden, wteT);
  const logits = (await logitsT.array()) as number[][];
  logitsT.dispose();
  const argmax = logits.map((row) => row.indexOf(Math.max(...row)));
  // Half the targets are the argmax, half are not.
  const targets = argmax.map((a, i) => (i % 2 === 0 ? a : (a + 1) % vocab));
  const weights = [1, 1, 2, 1, 0.5, 1, 1];
  let loss = 0;
  let hits = 0;
  logits.forEach((row, i) => {
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((s, z) => s + Math.exp(z - m), 0));
    loss += weights[i] * (lse - row[targets[i]]);
    if (argmax[i] === targets[i]) hits += weights[i];
  });
  const t = tf.tensor1d(targets, 'int32');
  const w = tf.tensor1d(weights);
  const sums = lmHeadEvalSums(hidden, { wteT }, t, w, { chunkElements: 2 * vocab });
  const [lossSum, correct] = await sums.data();
  assert.ok(Math.abs(lossSum - loss) < 1e-4, `${lossSum} vs ${loss}`);
  assert.equal(correct, hits);
  tf.dispose([hidden, wte, wteT, t, w, sums]);
});

test('lossRows keeps only positions with a loss weight, with their targets', () => {
  const seqs = [
    { ids: Int32Array.from([5, 6, 7, 8]), lossMask: Uint8Array.from([0, 0, 1, 1]) },
    { ids: Int32Array.from([9, 10]), lossMask: Uint8Array.from([0, 1]) },
  ];
  const batch = collate(seqs, [0, 1], 0);
  const sel = lossRows(batch);
  // Row 0 predicts 7 at t=1 and 8 at t=2; row 1 (offset 4) predicts 10 at t=0.
  assert.deepEqual(Array.from(sel.rows), [1, 2, 4]);
  assert.deepEqual(Array.from(sel.targets), [7, 8, 10]);
  assert.equal(sel.weightSum, 3);
});
