import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  RepetitionPenaltyProcessor,
  TemperatureProcessor,
  TopKProcessor,
  TopPProcessor,
  softmax,
} from '../../../src/model/generation/logits-processors.js';
import { GreedySampler, MultinomialSampler } from '../../../src/model/generation/sampler.js';
import { StopSequenceMatcher } from '../../../src/model/generation/stopping-criteria.js';

test('temperature divides the logits', () => {
  const l = Float32Array.from([2, -4, 0]);
  new TemperatureProcessor(2).process(l);
  assert.deepEqual(Array.from(l), [1, -2, 0]);
});

test('top-k keeps the k largest', () => {
  const l = Float32Array.from([1, 5, 3, 4, 2]);
  new TopKProcessor(2).process(l);
  assert.deepEqual(Array.from(l), [-Infinity, 5, -Infinity, 4, -Infinity]);
});

test('top-p keeps the smallest set reaching the mass', () => {
  // probabilities 0.5, 0.3, 0.2 (log space)
  const l = Float32Array.from([Math.log(0.5), Math.log(0.3), Math.log(0.2)]);
  new TopPProcessor(0.7).process(l);
  assert.equal(l[2], -Infinity);
  assert.ok(Number.isFinite(l[0]) && Number.isFinite(l[1]));
  const one = Float32Array.from([Math.log(0.5), Math.log(0.3), Math.log(0.2)]);
  new TopPProcessor(0.4).process(one);
  assert.deepEqual(Array.from(one).map(Number.isFinite), [true, false, false]);
});

test('repetition penalty divides positive and multiplies negative logits of seen ids (as HF)', () => {
  const l = Float32Array.from([2, -2, 2]);
  new RepetitionPenaltyProcessor(2).process(l, [0, 1, 1]);
  assert.deepEqual(Array.from(l), [1, -4, 2]);
});

test('samplers: greedy takes the lowest argmax, multinomial follows the distribution', () => {
  assert.equal(new GreedySampler().sample(Float32Array.from([1, 3, 3])), 1);
  const l = Float32Array.from([Math.log(0.7), Math.log(0.2), Math.log(0.1), -Infinity]);
  const s = new MultinomialSampler(123);
  const counts = [0, 0, 0, 0];
  for (let i = 0; i < 5000; i++) counts[s.sample(l)]++;
  assert.equal(counts[3], 0);
  assert.ok(Math.abs(counts[0] / 5000 - 0.7) < 0.03, String(counts));
  assert.ok(Math.abs(counts[2] / 5000 - 0.1) < 0.02, String(counts));
  const p = softmax(l);
  assert.ok(Math.abs(p[0] - 0.7) < 1e-6);
});

test('stop matcher holds back possible prefixes and cuts at the stop', () => {
  const m = new StopSequenceMatcher(['###']);
  assert.deepEqual(m.push('ab#'), { text: 'ab', stopped: false });
  assert.deepEqual(m.push('#'), { text: '', stopped: false });
  assert.deepEqual(m.push('x'), { text: '##x', stopped: false });
  assert.deepEqual(m.push('y##'), { text: 'y', stopped: false });
  assert.deepEqual(m.push('#tail'), { text: '', stopped: true });
  const n = new StopSequenceMatcher(['END']);
  assert.deepEqual(n.push('oneEN'), { text: 'one', stopped: false });
  assert.equal(n.flush(), 'EN');
});
