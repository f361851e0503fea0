import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveValidation, splitByRatio } from '../../../../src/training/data/split.js';

const items = Array.from({ length: 100 }, (_, i) => i);

test('holds out round(ratio * n) items, deterministically under a seed, keeping input order', () => {
  const a = splitByRatio(items, 0.1, 42);
  assert.equal(a.validation.length, 10);
  assert.equal(a.train.length, 90);
  assert.deepEqual(splitByRatio(items, 0.1, 42), a);
  assert.deepEqual(
    [...a.train, ...a.validation].sort((x, y) => x - y),
    items,
  );
  for (const part of [a.train, a.validation]) {
    assert.deepEqual(part, [...part].sort((x, y) => x - y));
  }
  assert.notDeepEqual(splitByRatio(items, 0.1, 43).validation, a.validation);
  // Not simply the first or last items.
  assert.notDeepEqual(a.validation, items.slice(0, 10));
  assert.notDeepEqual(a.validation, items.slice(90));
});

test('small datasets keep at least one item on each side', () => {
  assert.deepEqual(
    splitByRatio([1, 2, 3], 0.01, 1).validation.length,
    1,
  );
  assert.equal(splitByRatio([1, 2], 0.99, 1).train.length, 1);
  assert.deepEqual(splitByRatio([1], 0, 1), { train: [1], validation: [] });
  assert.throws(() => splitByRatio([1], 0.2, 1), {
    message: '`validation_split` 0.2 needs at least 2 examples, got 1',
  });
});

test('the ratio is validated', () => {
  for (const ratio of [-0.1, 1, 1.5, Number.NaN]) {
    assert.throws(() => splitByRatio(items, ratio, 1), {
      message: `\`validation_split\` must be >= 0 and < 1, got ${ratio}`,
    });
  }
});

test('a separate validation set is used as is; giving both is an error', () => {
  assert.deepEqual(resolveValidation([1, 2, 3], { validation: [9], seed: 1 }), { train: [1, 2, 3], validation: [9] });
  assert.deepEqual(resolveValidation([1, 2, 3], { seed: 1 }), { train: [1, 2, 3], validation: [] });
  assert.equal(resolveValidation(items, { validationRatio: 0.2, seed: 5 }).validation.length, 20);
  assert.throws(() => resolveValidation([1, 2, 3], { validation: [9], validationRatio: 0.1, seed: 1 }), {
    message: 'give either a validation dataset or `validation_split`, not both (got validation_split 0.1)',
  });
});
