import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LossAccumulator, perplexityFromLoss } from '../../../src/eval/perplexity.js';
import { InvalidArgument } from '../../../src/common/errors.js';

test('mean loss is weighted by tokens, not by batches', () => {
  // Batch A: 3 tokens, NLL sum 3 (mean 1); batch B: 1 token, NLL 3 (mean 3).
  const acc = new LossAccumulator().add(3, 3).add(3, 1);
  assert.equal(acc.tokenCount, 4);
  assert.equal(acc.meanLoss(), 1.5); // not (1 + 3) / 2 = 2
  assert.equal(acc.perplexity(), Math.exp(1.5));
});

test('per-token NLLs with a mask skip masked positions', () => {
  const acc = new LossAccumulator().addTokens([0.5, 9, 1.5, 9], [1, 0, 1, 0]);
  assert.equal(acc.tokenCount, 2);
  assert.equal(acc.meanLoss(), 1);
  assert.throws(() => acc.addTokens([1, 2], [1]), /`mask` must have 2 entries/);
});

test('perplexity of a uniform distribution over V tokens is V', () => {
  const vocab = 50257;
  const acc = new LossAccumulator().addTokens(new Float64Array(100).fill(Math.log(vocab)));
  assert.ok(Math.abs(acc.perplexity() - vocab) < 1e-6 * vocab);
  assert.equal(perplexityFromLoss(0), 1);
});

test('merging accumulators equals accumulating everything in one', () => {
  const a = new LossAccumulator().add(10, 4);
  const b = new LossAccumulator().add(2, 4);
  const all = new LossAccumulator().add(10, 4).add(2, 4);
  assert.deepEqual(a.merge(b).totals(), all.totals());
  assert.deepEqual(new LossAccumulator().merge({ nllSum: 12, tokenCount: 8 }).totals(), all.totals());
});

test('long sums keep their precision (compensated summation)', () => {
  const acc = new LossAccumulator();
  for (let i = 0; i < 1_000_000; i++) acc.add(0.1, 1);
  assert.equal(acc.meanLoss(), 0.1);
});

test('no tokens gives NaN; invalid input is rejected', () => {
  const empty = new LossAccumulator();
  assert.ok(Number.isNaN(empty.meanLoss()));
  assert.ok(Number.isNaN(empty.perplexity()));
  assert.throws(() => empty.add(-1, 1), InvalidArgument);
  assert.throws(() => empty.add(Number.NaN, 1), /`nllSum` must be >= 0, got NaN/);
  assert.throws(() => empty.add(1, 1.5), /`tokenCount` must be an integer >= 0, got 1.5/);
  assert.throws(() => empty.add(1, 0), /`nllSum` must be 0 when `tokenCount` is 0/);
  assert.equal(new LossAccumulator().add(Number.POSITIVE_INFINITY, 1).perplexity(), Number.POSITIVE_INFINITY);
});
