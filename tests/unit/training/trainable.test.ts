import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../../src/common/rng.js';
import { disposeAdapter } from '../../../src/model/adapter.js';
import { forward } from '../../../src/model/gpt.js';
import { disposeWeights, type Gpt2Weights, isLayerNorm, namedWeights } from '../../../src/model/gpt-weights.js';
import { AdamW } from '../../../src/training/adamw.js';
import { adapterForwardOptions, forwardInputOf } from '../../../src/training/batch-input.js';
import { collate } from '../../../src/training/data/collate.js';
import { gatherRows, lmHeadCrossEntropy, lossRows } from '../../../src/training/sft-loss.js';
import { optimizerStep } from '../../../src/training/train-step.js';
import { createTrainable, type Trainable, type TrainMethod } from '../../../src/training/trainable.js';
import { testBackend, TINY, tinyWeights } from '../../helpers/tiny-model.js';

before(async () => {
  await testBackend();
});

const LORA_ALL: TrainMethod = {
  kind: 'lora',
  r: 4,
  alpha: 8,
  dropout: 0,
  targetModules: ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'],
};

/** A batch of 3 ragged rows, with loss on the second half of each. */
function batch(seed: number) {
  const rng = new Rng(seed);
  const seqs = [9, 6, 12].map((n) => ({
    ids: Int32Array.from({ length: n }, () => rng.int(TINY.vocabSize)),
    lossMask: Uint8Array.from({ length: n }, (_, i) => (i >= n / 2 ? 1 : 0)),
  }));
  return collate(seqs, [0, 1, 2], 256);
}

/** Gives LoRA's B a non-zero value, so that A's gradient is non-zero too. */
function perturb(trainable: Trainable, seed: number): void {
  const rng = new Rng(seed);
  trainable.assign(trainable.params.map((p) => Float32Array.from({ length: p.variable.size }, () => 0.05 * rng.normal())));
}

async function gradsOf(trainable: Trainable, loss: () => tf.Scalar): Promise<Float32Array[]> {
  const vars = trainable.params.map((p) => p.variable);
  const { value, grads } = tf.variableGrads(loss, vars);
  const out = await Promise.all(vars.map((v) => grads[v.name].data() as Promise<Float32Array>));
  tf.dispose([value, ...Object.values(grads)]);
  return out;
}

for (const method of [LORA_ALL, { kind: 'last_layers', numLayers: 2 } as TrainMethod]) {
  const title = `${method.kind}: the training path's gradient (weightT, row gather, fused head) equals plain autodiff of full logits`;
  test(title, async () => {
    const weights = tinyWeights(TINY, 5);
    const trainable = createTrainable(TINY, weights, method, { seed: 3 });
    if (method.kind === 'lora') perturb(trainable, 4);
    const b = batch(6);
    const sel = lossRows(b);
    const ours = await gradsOf(trainable, () => {
      const hidden = forward(TINY, trainable.weights, forwardInputOf(b), {
        ...adapterForwardOptions(trainable.live, b.size),
        output: 'hidden',
      });
      const picked = gatherRows(hidden, tf.tensor1d(sel.rows, 'int32'));
      return lmHeadCrossEntropy(picked, trainable.head, tf.tensor1d(sel.targets, 'int32'), tf.tensor1d(sel.weights), sel.weightSum);
    });
    // Plain: logits for every position from the untouched base weights, tf's cross-entropy, padding weighted 0.
    const plain = await gradsOf(trainable, () => {
      const logits = forward(TINY, weights, forwardInputOf(b), adapterForwardOptions(trainable.live, b.size));
      const onehot = tf.cast(tf.oneHot(tf.tensor1d(b.targets, 'int32'), TINY.vocabSize), 'float32');
      const ce = tf.losses.softmaxCrossEntropy(onehot, logits, tf.tensor1d(b.lossWeights), 0, tf.Reduction.SUM);
      return tf.div(ce, b.tokenCount) as tf.Scalar;
    });
    let worst = 0;
    let scale = 0;
    ours.forEach((g, i) =>
      g.forEach((x, j) => {
        worst = Math.max(worst, Math.abs(x - plain[i][j]));
        scale = Math.max(scale, Math.abs(plain[i][j]));
      }),
    );
    assert.ok(scale > 1e-4, 'gradients are not all zero');
    assert.ok(worst < 1e-5 * Math.max(1, scale), `max |ours - plain| = ${worst} (max |grad| ${scale})`);
    trainable.dispose();
    disposeWeights(weights);
  });
}

test('LoRA init: A ~ U(+-1/sqrt(in)) as PEFT, B = 0, deterministic under the seed; names and decay flags', async () => {
  const weights = tinyWeights(TINY, 1);
  const a = createTrainable(TINY, weights, { ...LORA_ALL, useRslora: true }, { seed: 9 });
  const b = createTrainable(TINY, weights, { ...LORA_ALL, useRslora: true }, { seed: 9 });
  const c = createTrainable(TINY, weights, { ...LORA_ALL, useRslora: true }, { seed: 10 });
  assert.equal(a.params.length, TINY.nLayer * 4 * 2);
  assert.deepEqual(
    a.params.slice(0, 4).map((p) => p.name),
    ['h.0.attn.c_attn.lora_a', 'h.0.attn.c_attn.lora_b', 'h.0.attn.c_proj.lora_a', 'h.0.attn.c_proj.lora_b'],
  );
  assert.ok(a.params.every((p) => p.decay));
  const fc = a.live.kind === 'lora' ? a.live.lora.modules.get('1.mlp.c_proj')! : assert.fail();
  assert.deepEqual(fc.a.shape, [4 * TINY.nEmbd, 4]);
  assert.deepEqual(fc.b.shape, [4, TINY.nEmbd]);
  const aValues = await fc.a.data();
  const bound = 1 / Math.sqrt(4 * TINY.nEmbd);
  assert.ok(aValues.every((x) => Math.abs(x) <= bound));
  assert.ok(Math.max(...aValues) > 0.9 * bound && Math.min(...aValues) < -0.9 * bound, 'spans the interval');
  assert.ok((await fc.b.data()).every((x) => x === 0));
  assert.equal(a.live.kind === 'lora' && a.live.lora.scale, 8 / 2);
  assert.deepEqual(await a.params[0].variable.data(), await b.params[0].variable.data());
  assert.notDeepEqual(await a.params[0].variable.data(), await c.params[0].variable.data());
  // r * (in + out) per module: c_attn 32->96, attn.c_proj 32->32, c_fc 32->128, mlp.c_proj 128->32.
  assert.equal(a.parameterCount, TINY.nLayer * 4 * (32 + 96 + 32 + 32 + 32 + 128 + 128 + 32));
  for (const t of [a, b, c]) t.dispose();
  disposeWeights(weights);
});

test('last_layers trains the top blocks and ln_f; decay on projection weights only', () => {
  const weights = tinyWeights(TINY, 1);
  const t = createTrainable(TINY, weights, { kind: 'last_layers', numLayers: 1 }, { seed: 1 });
  const names = t.params.map((p) => p.name);
  assert.ok(names.every((n) => n.startsWith('h.1.') || n.startsWith('ln_f.')));
  assert.equal(names.length, 12 + 2);
  const decayed = t.params.filter((p) => p.decay).map((p) => p.name);
  assert.deepEqual(decayed, ['h.1.attn.c_attn.weight', 'h.1.attn.c_proj.weight', 'h.1.mlp.c_fc.weight', 'h.1.mlp.c_proj.weight']);
  t.dispose();
  disposeWeights(weights);
});

async function hostCopy(weights: Gpt2Weights): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [name, t] of namedWeights(weights)) out.set(name, (await t.data()) as Float32Array);
  return out;
}

for (const method of [LORA_ALL, { kind: 'last_layers', numLayers: 2 } as TrainMethod]) {
  const title = `${method.kind}: training steps never write the base weights; the exported adapter outlives the run; nothing leaks`;
  test(title, async () => {
    const weights = tinyWeights(TINY, 2);
    const before = await hostCopy(weights);
    const count = tf.memory().numTensors;
    const trainable = createTrainable(TINY, weights, method, { seed: 1 });
    const optimizer = new AdamW(trainable.params, { weightDecay: 0.1 });
    const ctx = { config: TINY, trainable, optimizer, maxGradNorm: 1, dropoutRng: new Rng(1) };
    for (let i = 0; i < 3; i++) optimizerStep(ctx, [batch(i)], 1e-2).dispose();
    const adapter = trainable.exportAdapter();
    const live = await trainable.params[trainable.params.length - 1].variable.data();
    optimizer.dispose();
    trainable.dispose();
    const exported = adapter.kind === 'lora' ? [...adapter.lora.modules.values()].at(-1)!.b : isLayerNorm(adapter.lnF) ? adapter.lnF.bias : assert.fail();
    assert.deepEqual(await exported.data(), live);
    disposeAdapter(adapter);
    assert.equal(tf.memory().numTensors, count);
    const after = await hostCopy(weights);
    for (const [name, data] of before) assert.deepEqual(after.get(name), data, name);
    disposeWeights(weights);
  });
}

test('bad methods name the field and the value', () => {
  const weights = tinyWeights(TINY, 1);
  const lora = (patch: object): TrainMethod => ({ ...LORA_ALL, ...patch }) as TrainMethod;
  assert.throws(() => createTrainable(TINY, weights, lora({ r: 0 }), { seed: 1 }), /`r` must be a positive integer, got 0/);
  assert.throws(() => createTrainable(TINY, weights, lora({ dropout: 1 }), { seed: 1 }), /`lora_dropout` must be in \[0, 1\), got 1/);
  assert.throws(() => createTrainable(TINY, weights, lora({ targetModules: ['attn.q'] }), { seed: 1 }), /`target_modules`.*"attn.q"/);
  assert.throws(
    () => createTrainable(TINY, weights, { kind: 'last_layers', numLayers: 3 }, { seed: 1 }),
    /`num_layers` must be an integer in \[1, 2\], got 3/,
  );
  disposeWeights(weights);
});
