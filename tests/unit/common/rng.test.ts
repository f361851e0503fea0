import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../../src/common/rng.js';

test('Rng is deterministic under a seed and restores from its state', () => {
  const a = new Rng(42);
  const b = new Rng(42);
  const xs = Array.from({ length: 5 }, () => a.next());
  assert.deepEqual(xs, Array.from({ length: 5 }, () => b.next()));
  const state = a.getState();
  const next = a.next();
  const c = new Rng(0);
  c.setState(state);
  assert.equal(c.next(), next);
  assert.notEqual(new Rng(43).next(), new Rng(42).next());
  for (const x of xs) assert.ok(x >= 0 && x < 1);
});
