import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { adapterTensors, disposeAdapter } from '../../../../src/model/adapter.js';
import { initLastLayersAdapter } from '../../../../src/model/adapter-init.js';
import { loadAdapter, saveAdapter } from '../../../../src/model/checkpoint/peft-adapter.js';
import { readModelFolder } from '../../../../src/model/checkpoint/hf-model-folder.js';
import { type LlamaConfig, llamaTensorShapes } from '../../../../src/model/llama-config.js';
import { disposeWeights, type LlamaWeights, weightsFromHost } from '../../../../src/model/gpt-weights.js';
import { forward } from '../../../../src/model/gpt.js';
import { createKvCache } from '../../../../src/model/kv-cache.js';
import { llamaReferenceLogits } from '../../../reference/numpy-reference.js';
import { testBackend } from '../../../helpers/tiny-model.js';
import { type HfConfigJson, llamaModelFolder, llamaTensors, QWEN3_LIKE } from '../../../helpers/llama-model.js';
import { inspectAdapter, maxAbsDiff, rowInput, take } from './peft-reference.js';

// A last_layers adapter for the Llama family: the top blocks and the final
// norm, saved in checkpoint layout ([out, in] nn.Linear weights) under PEFT
// prefixes, and what numpy computes with those tensors swapped into the model.

const TOL = 1e-4;
const TIMEOUT = { timeout: 120_000 };
// Qwen3 with attention_bias: q/k norm gains and q/k/v/o biases in the block besides its projections and norms.
const QWEN3_BIASED = { ...QWEN3_LIKE, attention_bias: true };
const SHAPES: [string, HfConfigJson][] = [['Qwen3-like with attention_bias (q/k norm, q/k/v/o biases)', QWEN3_BIASED]];
let root: string;
const models = new Map<HfConfigJson, { dir: string; config: LlamaConfig; weights: LlamaWeights }>();

before(async () => {
  await testBackend();
  root = await mkdtemp(join(tmpdir(), 'gentune-llama-last-'));
  for (const [, json] of SHAPES) {
    const dir = await llamaModelFolder(json, 81);
    const ckpt = await readModelFolder(dir);
    const config = ckpt.config as LlamaConfig;
    models.set(json, { dir, config, weights: weightsFromHost(config, ckpt.tensors) });
  }
});

after(async () => {
  for (const m of models.values()) {
    disposeWeights(m.weights);
    await rm(m.dir, { recursive: true, force: true });
  }
  await rm(root, { recursive: true, force: true });
});

const ids = (n: number, vocab: number, seed: number) => Array.from({ length: n }, (_, i) => (seed * 7919 + i * 104729) % vocab);

for (const [i, [label, json]] of SHAPES.entries()) {
  test(`${label}: a last_layers adapter saves in checkpoint layout, round-trips exactly and matches numpy with its tensors swapped in`, TIMEOUT, async () => {
    const { dir: modelDir, config, weights } = models.get(json)!;
    // "Trained" weights: the top block and final norm of another random model of the shape.
    const other = weightsFromHost(config, llamaTensors(json, 82 + i));
    const adapter = initLastLayersAdapter(other, 1, 'llama-like');
    disposeWeights(other);
    const dir = join(root, `last-${i}`);
    await saveAdapter(dir, adapter, config);

    const { config: c, tensors } = await inspectAdapter(dir);
    assert.deepEqual(c, { base_model_name_or_path: 'llama-like', inference_mode: true, num_layers: 1, peft_type: 'LAST_LAYERS', task_type: 'CAUSAL_LM' });
    const shapes = llamaTensorShapes(config);
    const want = [...shapes.keys()].filter((k) => k.startsWith('model.layers.1.') || k === 'model.norm.weight');
    assert.ok(['self_attn.o_proj.bias', 'self_attn.k_norm.weight'].every((k) => want.includes(`model.layers.1.${k}`)), 'the shape has biases and q/k norms');
    assert.deepEqual(Object.keys(tensors).sort(), want.map((k) => `base_model.model.${k}`).sort(), 'every tensor of the top layer and the norm, under its checkpoint name');
    for (const k of want) assert.deepEqual(tensors[`base_model.model.${k}`].shape, shapes.get(k), `${k}: checkpoint shape ([out, in] for projections)`);

    const before = tf.memory().numTensors;
    const loaded = await loadAdapter(dir, config);
    assert.ok(loaded.kind === 'last_layers');
    assert.equal(loaded.numLayers, 1);
    assert.deepEqual([...loaded.blocks.keys()], [1]);
    const [savedT, loadedT] = [adapterTensors(adapter), adapterTensors(loaded)];
    assert.equal(loadedT.length, savedT.length);
    for (const [k, t] of loadedT.entries()) {
      assert.deepEqual(t.shape, savedT[k].shape);
      assert.deepEqual(await t.data(), await savedT[k].data());
    }

    const long = ids(14, config.vocabSize, 3);
    const opts = { blockOverrides: loaded.blocks, lnF: loaded.lnF };
    const ours = await take(forward(config, weights, rowInput(long), opts));
    assert.deepEqual(ours, await take(forward(config, weights, rowInput(long), { blockOverrides: adapter.blocks, lnF: adapter.lnF })));
    const [ref] = await llamaReferenceLogits(modelDir, [long], dir);
    const [plain] = await llamaReferenceLogits(modelDir, [long]);
    assert.ok(maxAbsDiff(ours, ref.flat()) < TOL, `ours vs numpy: ${maxAbsDiff(ours, ref.flat())}`);
    assert.ok(maxAbsDiff(plain.flat(), ref.flat()) > 1e-2, 'the adapter has a visible effect');

    // Token by token through the KV cache, the adapter's blocks on every step.
    const cache = createKvCache(config, 1);
    const steps = [await take(forward(config, weights, rowInput(long.slice(0, 4)), { ...opts, cache }))];
    for (let t = 4; t < long.length; t++) {
      const step = { ...rowInput([long[t]]), positions: Int32Array.from([t]) };
      steps.push(await take(forward(config, weights, step, { ...opts, cache })));
    }
    cache.dispose();
    const decoded = Float32Array.from(steps.flatMap((x) => Array.from(x)));
    assert.ok(maxAbsDiff(decoded, ref.flat()) < TOL, `KV decode vs numpy: ${maxAbsDiff(decoded, ref.flat())}`);

    disposeAdapter(loaded);
    assert.equal(tf.memory().numTensors, before, 'the adapter and every pass are freed');
    disposeAdapter(adapter);
  });
}

test('a last_layers adapter over every layer holds copies of the base: the base\'s logits, bit for bit', async () => {
  const { config, weights } = models.get(QWEN3_BIASED)!;
  const adapter = initLastLayersAdapter(weights, config.nLayer);
  const row = rowInput(ids(9, config.vocabSize, 4));
  const plain = await take(forward(config, weights, row));
  assert.deepEqual(await take(forward(config, weights, row, { blockOverrides: adapter.blocks, lnF: adapter.lnF })), plain);
  disposeAdapter(adapter);
});
