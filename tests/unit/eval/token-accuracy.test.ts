import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IGNORE_INDEX, TokenAccuracyAccumulator } from '../../../src/eval/token-accuracy.js';
import { InvalidArgument } from '../../../src/common/errors.js';

test('accuracy is correct tokens over scored tokens across batches', () => {
  // Batch A 1/1 correct, batch B 1/3: token-weighted 2/4, not the batch mean 2/3.
  const acc = new TokenAccuracyAccumulator().add(1, 1).add(1, 3);
  assert.equal(acc.accuracy(), 0.5);
  assert.deepEqual(acc.totals(), { correct: 2, tokenCount: 4 });
});

test('argmax ids against labels skip ignored positions (-100, as in Hugging Face)', () => {
  const acc = new TokenAccuracyAccumulator().addPredictions(
    Int32Array.from([5, 7, 9, 1, 2]),
    Int32Array.from([IGNORE_INDEX, 7, 8, 1, IGNORE_INDEX]),
  );
  assert.deepEqual(acc.totals(), { correct: 2, tokenCount: 3 });
  assert.equal(acc.accuracy(), 2 / 3);
  const padded = new TokenAccuracyAccumulator().addPredictions([0, 0], [0, 50256], 50256);
  assert.deepEqual(padded.totals(), { correct: 1, tokenCount: 1 });
});

test('merge adds totals; empty is NaN; bad counts are rejected', () => {
  const a = new TokenAccuracyAccumulator().add(3, 4);
  a.merge(new TokenAccuracyAccumulator().add(1, 4)).merge({ correct: 0, tokenCount: 2 });
  assert.deepEqual(a.totals(), { correct: 4, tokenCount: 10 });
  assert.ok(Number.isNaN(new TokenAccuracyAccumulator().accuracy()));
  assert.throws(() => a.add(5, 4), /`correct` must be <= tokenCount \(4\), got 5/);
  assert.throws(() => a.add(-1, 4), InvalidArgument);
  assert.throws(() => a.addPredictions([1], [1, 2]), /`labels` must have 1 entries/);
});
