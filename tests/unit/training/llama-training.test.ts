import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../../src/common/rng.js';
import { disposeAdapter } from '../../../src/model/adapter.js';
import { readModelFolder } from '../../../src/model/checkpoint/hf-model-folder.js';
import { saveAdapter } from '../../../src/model/checkpoint/peft-adapter.js';
import type { LlamaConfig } from '../../../src/model/gpt-config.js';
import { disposeWeights, type LlamaWeights, weightsFromHost } from '../../../src/model/gpt-weights.js';
import { forward } from '../../../src/model/gpt.js';
import { LLAMA_LORA_TARGETS } from '../../../src/model/lora.js';
import { adapterForwardOptions, forwardInputOf } from '../../../src/training/batch-input.js';
import { type Batch, collate } from '../../../src/training/data/collate.js';
import type { TokenSequence } from '../../../src/training/data/token-sequence.js';
import { evaluateLoss } from '../../../src/training/evaluate-loss.js';
import { gatherRows, lmHeadCrossEntropy, lossRows } from '../../../src/training/sft-loss.js';
import { stepGradients } from '../../../src/training/train-step.js';
import { createTrainable, type Trainable, type TrainMethod } from '../../../src/training/trainable.js';
import { train } from '../../../src/training/trainer.js';
import { llamaLoraGradients, type LossRow } from '../../reference/numpy-reference.js';
import { testBackend } from '../../helpers/tiny-model.js';
import { llamaModelFolder, QWEN3_TINY } from '../../helpers/llama-model.js';

// LoRA and last_layers training on the Llama family. The trainer's LoRA
// gradients are checked against central finite differences of the numpy
// reference's loss (tests/reference/llama_reference.py, float64), entry by
// entry, on a shape small enough for that (QWEN3_TINY: every projection a
// different size, q/k norm, GQA, biases, untied head).

const TIMEOUT = { timeout: 120_000 };
const LORA: TrainMethod = { kind: 'lora', r: 2, alpha: 4, dropout: 0, targetModules: [...LLAMA_LORA_TARGETS] };
let root: string;
let modelDir: string;
let config: LlamaConfig;
let weights: LlamaWeights;

before(async () => {
  await testBackend();
  root = await mkdtemp(join(tmpdir(), 'gentune-llama-train-'));
  modelDir = await llamaModelFolder(QWEN3_TINY, 91);
  const ckpt = await readModelFolder(modelDir);
  config = ckpt.config as LlamaConfig;
  weights = weightsFromHost(config, ckpt.tensors);
});

after(async () => {
  disposeWeights(weights);
  await rm(root, { recursive: true, force: true });
  await rm(modelDir, { recursive: true, force: true });
});

/** Random sequences of ids with the loss on their second half. */
function sequences(lengths: number[], seed: number): TokenSequence[] {
  const rng = new Rng(seed);
  return lengths.map((n) => ({
    ids: Int32Array.from({ length: n }, () => rng.int(config.vocabSize)),
    lossMask: Uint8Array.from({ length: n }, (_, i) => (i >= n / 2 ? 1 : 0)),
  }));
}

/** A batch's rows as the reference takes them: each row's real tokens, their targets and loss weights. */
function lossRowsOf(batch: Batch): LossRow[] {
  const rows: LossRow[] = [];
  for (let b = 0; b < batch.size; b++) {
    const at = (a: ArrayLike<number>) => Array.from(a).slice(b * batch.seqLen, (b + 1) * batch.seqLen).filter((_, t) => batch.attentionMask[b * batch.seqLen + t]);
    rows.push({ ids: at(batch.inputIds), targets: at(batch.targets), weights: at(batch.lossWeights) });
  }
  return rows;
}

/** Sets every parameter to seeded values, so that LoRA's B is non-zero and A's gradient too. */
function perturb(t: Trainable, seed: number, scale: number): void {
  const rng = new Rng(seed);
  t.assign(t.params.map((p) => Float32Array.from({ length: p.variable.size }, () => scale * rng.normal())));
}

/** [rows, cols] row-major -> its transpose as nested arrays. */
function transposed(data: Float32Array, rows: number, cols: number): number[][] {
  return Array.from({ length: cols }, (_, j) => Array.from({ length: rows }, (_, i) => data[i * cols + j]));
}

test('one step\'s LoRA gradients (2 micro-batches, every projection, both layers) equal numpy\'s finite differences to 1e-4 relative', TIMEOUT, async () => {
  const start = tf.memory().numTensors;
  const trainable = createTrainable(config, weights, LORA, { seed: 1 });
  perturb(trainable, 2, 0.2);
  const seqs = sequences([7, 5, 9], 3);
  const batches = [collate(seqs, [0, 1], 0), collate(seqs, [2], 0)];
  const dir = join(root, 'grad');
  const exported = trainable.exportAdapter();
  await saveAdapter(dir, exported, config);
  disposeAdapter(exported);
  const ref = await llamaLoraGradients(modelDir, dir, { rows: batches.flatMap(lossRowsOf), layers: [0, 1], eps: 1e-5 });

  const before = tf.memory().numTensors;
  const step = stepGradients({ config, trainable, dropoutRng: new Rng(1) }, batches)!;
  const loss = (await step.loss.data())[0];
  assert.ok(Math.abs(loss - ref.loss) < 1e-5 * ref.loss, `loss ${loss} vs numpy ${ref.loss}`);
  let checked = 0;
  for (const [k, p] of trainable.params.entries()) {
    // `layers.0.self_attn.q_proj.lora_a` holds A^T [in, r]; PEFT's A is [r, in] (B likewise).
    const [, layer, module, which] = /^layers\.(\d+)\.(.+)\.lora_([ab])$/.exec(p.name)!;
    const want = ref.grads[`base_model.model.model.layers.${layer}.${module}.lora_${which.toUpperCase()}.weight`];
    assert.ok(want, `numpy has ${p.name}`);
    const [rows, cols] = p.variable.shape;
    const got = transposed((await step.grads[k].data()) as Float32Array, rows, cols);
    const scale = Math.max(...want.flat().map(Math.abs));
    const worst = Math.max(...got.flat().map((g, i) => Math.abs(g - want.flat()[i])));
    assert.ok(scale > 1e-4, `${p.name}: the gradient is not ~0 (${scale})`);
    assert.ok(worst <= 1e-4 * scale, `${p.name}: max |ours - numpy| = ${worst}, max |numpy| = ${scale}`);
    checked++;
  }
  assert.equal(checked, config.nLayer * 7 * 2);
  tf.dispose([step.loss, ...step.grads]);
  assert.equal(tf.memory().numTensors, before, 'the step frees everything but what it returns');

  // The same adapter's evaluation loss is the reference's loss over the same tokens.
  const evaluated = await evaluateLoss(config, weights, seqs, { adapter: trainable.live, padId: 0, batchSize: 2 });
  assert.ok(Math.abs(evaluated.loss - ref.loss) < 1e-5 * ref.loss, `evaluateLoss ${evaluated.loss} vs numpy ${ref.loss}`);
  assert.equal(evaluated.tokens, batches.reduce((n, b) => n + b.tokenCount, 0));
  trainable.dispose();
  assert.equal(tf.memory().numTensors, start, 'the trainable frees its variables and the untied head\'s transpose');
});

test('last_layers: the training path\'s gradient (weightT, row gather, fused untied head) equals plain autodiff of full logits', async () => {
  const trainable = createTrainable(config, weights, { kind: 'last_layers', numLayers: 1 }, { seed: 1 });
  const names = trainable.params.map((p) => p.name);
  assert.ok(names.every((n) => n.startsWith('model.layers.1.') || n === 'model.norm.weight'), names.join());
  assert.ok(names.includes('model.layers.1.self_attn.q_norm.weight') && names.includes('model.layers.1.self_attn.o_proj.bias'));
  assert.deepEqual(trainable.params.filter((p) => p.decay).map((p) => p.name.slice('model.layers.1.'.length)), [...LLAMA_LORA_TARGETS].map((t) => `${t}.weight`));
  const b = collate(sequences([8, 6, 10], 4), [0, 1, 2], 0);
  const sel = lossRows(b);
  const grads = async (loss: () => tf.Scalar) => {
    const { value, grads: g } = tf.variableGrads(loss, trainable.params.map((p) => p.variable));
    const out = await Promise.all(trainable.params.map((p) => g[p.variable.name].data() as Promise<Float32Array>));
    tf.dispose([value, ...Object.values(g)]);
    return out;
  };
  const options = adapterForwardOptions(trainable.live, b.size);
  const ours = await grads(() => {
    const hidden = forward(config, trainable.weights, forwardInputOf(b), { ...options, output: 'hidden' });
    const picked = gatherRows(hidden, tf.tensor1d(sel.rows, 'int32'));
    return lmHeadCrossEntropy(picked, trainable.head, tf.tensor1d(sel.targets, 'int32'), tf.tensor1d(sel.weights), sel.weightSum);
  });
  const plain = await grads(() => {
    const logits = forward(config, weights, forwardInputOf(b), options);
    const onehot = tf.cast(tf.oneHot(tf.tensor1d(b.targets, 'int32'), config.vocabSize), 'float32');
    return tf.div(tf.losses.softmaxCrossEntropy(onehot, logits, tf.tensor1d(b.lossWeights), 0, tf.Reduction.SUM), b.tokenCount) as tf.Scalar;
  });
  let worst = 0;
  let scale = 0;
  ours.forEach((g, i) => g.forEach((x, j) => {
    worst = Math.max(worst, Math.abs(x - plain[i][j]));
    scale = Math.max(scale, Math.abs(plain[i][j]));
  }));
  assert.ok(scale > 1e-4, 'gradients are not all zero');
  assert.ok(worst < 1e-5 * Math.max(1, scale), `max |ours - plain| = ${worst} (max |grad| ${scale})`);
  trainable.dispose();
});

for (const method of [LORA, { kind: 'last_layers', numLayers: 1 } as TrainMethod]) {
  test(`${method.kind}: train() lowers the loss of a Llama-family model, leaves the base weights alone and frees what it made`, TIMEOUT, async () => {
    // Learnable: each sequence repeats a 3-token motif, so the second half follows from the first.
    const rng = new Rng(5);
    const motif = () => Array.from({ length: 3 }, () => rng.int(config.vocabSize));
    const data: TokenSequence[] = Array.from({ length: 16 }, () => {
      const m = motif();
      const ids = Int32Array.from([...m, ...m, ...m, ...m]);
      return { ids, lossMask: Uint8Array.from(ids, (_, i) => (i >= 3 ? 1 : 0)) };
    });
    const probe = weights.blocks[1].mlp.down_proj.weight;
    const probeBefore = await probe.data();
    const before = tf.memory().numTensors;
    const baseLoss = (await evaluateLoss(config, weights, data, { padId: 0 })).loss;
    const result = await train({
      config,
      weights,
      method,
      train: data,
      padId: 0,
      hyperparameters: { maxSteps: 12, batchSize: 8, learningRate: method.kind === 'lora' ? 3e-2 : 1e-2, warmupSteps: 0, evalIntervalSteps: 0, seed: 1 },
    });
    const trainedLoss = (await evaluateLoss(config, weights, data, { padId: 0, adapter: result.adapter })).loss;
    assert.ok(trainedLoss < baseLoss - 0.2, `loss ${baseLoss} -> ${trainedLoss}`);
    assert.deepEqual(await probe.data(), probeBefore, 'base weights untouched');
    disposeAdapter(result.adapter);
    assert.equal(tf.memory().numTensors, before);
  });
}
