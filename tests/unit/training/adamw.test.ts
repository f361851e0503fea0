import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../../src/common/rng.js';
import { AdamW, type OptimizedParameter } from '../../../src/training/adamw.js';
import { testBackend } from '../../helpers/tiny-model.js';

before(async () => {
  await testBackend();
});

// torch.optim.AdamW's update, written out in float32 numpy.
const NUMPY_ADAMW = `
import json, sys
import numpy as np
cfg = json.load(sys.stdin)
b1, b2, eps, wd = (np.float32(cfg[k]) for k in ('b1', 'b2', 'eps', 'wd'))
out = []
for p0, decay, grads in zip(cfg['params'], cfg['decay'], cfg['grads']):
    p = np.array(p0, dtype=np.float32)
    m = np.zeros_like(p); v = np.zeros_like(p)
    for t, (g, lr) in enumerate(zip(grads, cfg['lrs']), start=1):
        g = np.array(g, dtype=np.float32)
        if decay:
            p = p * np.float32(1 - lr * cfg['wd'])
        m = m * b1 + g * np.float32(1 - cfg['b1'])
        v = v * b2 + g * g * np.float32(1 - cfg['b2'])
        step_size = lr / (1 - cfg['b1'] ** t)
        denom = np.sqrt(v) / np.float32(np.sqrt(1 - cfg['b2'] ** t)) + eps
        p = p - (m / denom) * np.float32(step_size)
    out.append(p.tolist())
print(json.dumps(out))
`;

function randomArray(rng: Rng, n: number, scale: number): number[] {
  return Array.from({ length: n }, () => scale * rng.normal());
}

test('AdamW matches torch.optim.AdamW (numpy float32) over 4 steps, decay only where flagged', async () => {
  const rng = new Rng(11);
  const shapes = [[3, 4], [4], [2, 5]];
  const decay = [true, false, true];
  const steps = 4;
  const lrs = [1e-2, 3e-2, 2e-2, 5e-3];
  const init = shapes.map((s) => randomArray(rng, s[0] * (s[1] ?? 1), 1));
  // Mixed scales, including a tiny gradient where eps matters.
  const grads = shapes.map((s, i) => Array.from({ length: steps }, () => randomArray(rng, s[0] * (s[1] ?? 1), i === 1 ? 1e-6 : 0.5)));
  const params: OptimizedParameter[] = shapes.map((s, i) => ({
    name: `p${i}`,
    variable: tf.variable(tf.tensor(init[i], s)),
    decay: decay[i],
  }));
  const opt = new AdamW(params, { weightDecay: 0.1, beta1: 0.9, beta2: 0.95, epsilon: 1e-8 });
  for (let t = 0; t < steps; t++) {
    const g = shapes.map((s, i) => tf.tensor(grads[i][t], s));
    opt.step(g, lrs[t]);
    tf.dispose(g);
  }
  const ours = await Promise.all(params.map(async (p) => Array.from(await p.variable.data())));
  const py = spawnSync('/usr/bin/python3', ['-c', NUMPY_ADAMW], {
    input: JSON.stringify({ b1: 0.9, b2: 0.95, eps: 1e-8, wd: 0.1, lrs, params: init, decay, grads }),
    encoding: 'utf8',
  });
  assert.equal(py.status, 0, py.stderr);
  const ref = JSON.parse(py.stdout) as number[][];
  ref.forEach((r, i) =>
    r.forEach((x, j) => {
      const ok = Math.abs(x - ours[i][j]) <= 1e-6 * Math.max(1, Math.abs(x));
      assert.ok(ok, `p${i}[${j}]: ${ours[i][j]} vs numpy ${x}`);
    }),
  );
  opt.dispose();
  for (const p of params) p.variable.dispose();
});

test('one AdamW step by hand: the first step moves each entry by about lr, decay shrinks first', async () => {
  const p = tf.variable(tf.tensor1d([2, -1]));
  const opt = new AdamW([{ name: 'p', variable: p, decay: true }], { weightDecay: 0.5 });
  const g = tf.tensor1d([0.3, -4]);
  opt.step([g], 0.1);
  // t=1: m_hat = g, v_hat = g^2, so the update is lr * g / (|g| + eps) = lr * sign(g).
  const expected = [2 * (1 - 0.05) - 0.1, -1 * (1 - 0.05) + 0.1];
  const got = await p.data();
  expected.forEach((e, i) => assert.ok(Math.abs(got[i] - e) < 1e-6, `${got[i]} vs ${e}`));
  tf.dispose([p, g]);
  opt.dispose();
});

test('exported state restores exactly: the next steps are identical', async () => {
  const make = (): { p: tf.Variable; opt: AdamW } => {
    const p = tf.variable(tf.tensor2d([[0.5, -0.25], [1, 2]]));
    return { p, opt: new AdamW([{ name: 'p', variable: p, decay: true }], { weightDecay: 0.01 }) };
  };
  const grads = [[[0.1, 0.2], [-0.3, 0.05]], [[0.7, -0.1], [0.2, 0.2]], [[-0.4, 0.3], [0.1, -0.9]]].map((g) => tf.tensor2d(g));
  const a = make();
  a.opt.step([grads[0]], 1e-2);
  const state = await a.opt.exportState();
  const weights = await a.p.data();
  a.opt.step([grads[1]], 1e-2);
  a.opt.step([grads[2]], 5e-3);

  const b = make();
  b.p.assign(tf.tensor2d(weights as Float32Array, [2, 2]));
  b.opt.loadState({ step: state.step, m: state.m.map((x) => x.slice()), v: state.v.map((x) => x.slice()) });
  assert.equal(b.opt.stepCount, 1);
  b.opt.step([grads[1]], 1e-2);
  b.opt.step([grads[2]], 5e-3);
  assert.deepEqual(await b.p.data(), await a.p.data());
  for (const x of [a, b]) {
    x.opt.dispose();
    x.p.dispose();
  }
  tf.dispose(grads);
});

test('steps allocate no lasting tensors', () => {
  const p = tf.variable(tf.ones([4, 4]));
  const opt = new AdamW([{ name: 'p', variable: p, decay: true }], { weightDecay: 0.1 });
  const g = tf.ones([4, 4]);
  const before = tf.memory().numTensors;
  for (let i = 0; i < 5; i++) opt.step([g], 1e-3);
  assert.equal(tf.memory().numTensors, before);
  opt.dispose();
  tf.dispose([p, g]);
});

test('bad settings name the field', () => {
  const p = tf.variable(tf.ones([1]));
  const params = [{ name: 'p', variable: p, decay: true }];
  assert.throws(() => new AdamW(params, { weightDecay: -1 }), /`weight_decay` must be >= 0, got -1/);
  assert.throws(() => new AdamW(params, { beta2: 1 }), /`adam_beta2`/);
  p.dispose();
});
