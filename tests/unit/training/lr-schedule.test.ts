import { test } from 'node:test';
import assert from 'node:assert/strict';
import { learningRateAt, validateLrSchedule, type LrSchedule } from '../../../src/training/lr-schedule.js';

const close = (a: number, b: number, what: string): void => assert.ok(Math.abs(a - b) < 1e-12, `${what}: ${a} != ${b}`);

test('warmup rises linearly from the first step to the peak', () => {
  const s: LrSchedule = { learningRate: 1e-3, warmupSteps: 4, totalSteps: 20, kind: 'cosine' };
  close(learningRateAt(0, s), 0.25e-3, 'step 0');
  close(learningRateAt(1, s), 0.5e-3, 'step 1');
  close(learningRateAt(3, s), 1e-3, 'step 3 (last warmup step)');
  close(learningRateAt(4, s), 1e-3, 'step 4 (decay progress 0)');
});

test('cosine decays to the minimum ratio along half a cosine', () => {
  const s: LrSchedule = { learningRate: 2, warmupSteps: 0, totalSteps: 10, kind: 'cosine' };
  close(learningRateAt(0, s), 2, 'start');
  close(learningRateAt(5, s), 1, 'midpoint');
  close(learningRateAt(9, s), 1 + Math.cos(Math.PI * 0.9), 'last step');
  close(learningRateAt(10, s), 0, 'end');
  const floor = { ...s, minLrRatio: 0.1 };
  close(learningRateAt(5, floor), 2 * (0.1 + 0.9 * 0.5), 'midpoint with floor');
  close(learningRateAt(10, floor), 0.2, 'end with floor');
});

test('linear decays in a straight line; constant stays at the peak', () => {
  const s: LrSchedule = { learningRate: 1, warmupSteps: 2, totalSteps: 12, kind: 'linear' };
  close(learningRateAt(2, s), 1, 'after warmup');
  close(learningRateAt(7, s), 0.5, 'halfway');
  close(learningRateAt(11, s), 0.1, 'last step');
  const c: LrSchedule = { ...s, kind: 'constant', minLrRatio: 0.5 };
  close(learningRateAt(0, c), 0.5, 'warmup still applies');
  for (const step of [2, 7, 11, 50]) close(learningRateAt(step, c), 1, `constant at ${step}`);
});

test('the schedule is a pure function of the step (no state to resume)', () => {
  const s: LrSchedule = { learningRate: 3e-4, warmupSteps: 5, totalSteps: 100, kind: 'cosine', minLrRatio: 0.05 };
  const forward = Array.from({ length: 100 }, (_, i) => learningRateAt(i, s));
  const backward = Array.from({ length: 100 }, (_, i) => learningRateAt(99 - i, s)).reverse();
  assert.deepEqual(forward, backward);
});

test('bad schedules name the field and the value', () => {
  const ok: LrSchedule = { learningRate: 1e-3, warmupSteps: 0, totalSteps: 10, kind: 'cosine' };
  assert.throws(() => validateLrSchedule({ ...ok, learningRate: 0 }), /`learning_rate` must be > 0, got 0/);
  assert.throws(() => validateLrSchedule({ ...ok, warmupSteps: -1 }), /`warmup_steps`.*got -1/);
  assert.throws(
    () => validateLrSchedule({ ...ok, kind: 'exp' as never }),
    /`lr_scheduler` must be one of cosine, linear, constant, got "exp"/,
  );
  assert.throws(() => validateLrSchedule({ ...ok, minLrRatio: 2 }), /`min_lr_ratio`.*got 2/);
});
