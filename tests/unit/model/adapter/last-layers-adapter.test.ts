import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { disposeAdapter } from '../../../../src/model/adapter.js';
import { initLastLayersAdapter } from '../../../../src/model/adapter-init.js';
import { loadAdapter, saveAdapter } from '../../../../src/model/checkpoint/peft-adapter.js';
import { readGpt2Folder } from '../../../../src/model/checkpoint/hf-gpt2-folder.js';
import { forward } from '../../../../src/model/gpt.js';
import { blockNamed, disposeWeights, type GptWeights, isLayerNorm, isLlamaBlock, weightsFromHost } from '../../../../src/model/gpt-weights.js';
import { referenceLogits } from '../../../reference/numpy-reference.js';
import { testBackend, TINY, tinyModelFolder, tinyWeights } from '../../../helpers/tiny-model.js';
import { inspectAdapter, maxAbsDiff, peftLogits, rowInput, take } from './peft-reference.js';

const IDS = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5];
const TIMEOUT = { timeout: 120_000 };
let root: string;
let modelDir: string;
let base: GptWeights;

before(async () => {
  await testBackend();
  root = await mkdtemp(join(tmpdir(), 'gentune-last-layers-'));
  modelDir = await tinyModelFolder(TINY, 51);
  const ckpt = await readGpt2Folder(modelDir);
  base = weightsFromHost(ckpt.config, ckpt.tensors);
});

after(async () => {
  disposeWeights(base);
  await rm(root, { recursive: true, force: true });
  await rm(modelDir, { recursive: true, force: true });
});

test('a last_layers adapter round-trips exactly and its forward matches numpy with the tensors replaced', TIMEOUT, async () => {
  // "Trained" weights: the top block and ln_f of a different random model.
  const other = tinyWeights(TINY, 52);
  const adapter = initLastLayersAdapter(other, 1, 'tiny-gpt2');
  disposeWeights(other);
  const dir = join(root, 'last');
  await saveAdapter(dir, adapter, TINY);

  const { config, tensors } = await inspectAdapter(dir);
  assert.deepEqual(config, { base_model_name_or_path: 'tiny-gpt2', inference_mode: true, num_layers: 1, peft_type: 'LAST_LAYERS', task_type: 'CAUSAL_LM' });
  const d = TINY.nEmbd;
  assert.deepEqual(tensors['base_model.model.transformer.h.1.attn.c_attn.weight'], { dtype: 'F32', shape: [d, 3 * d] });
  assert.deepEqual(tensors['base_model.model.transformer.ln_f.bias'], { dtype: 'F32', shape: [d] });
  assert.equal(Object.keys(tensors).length, 12 + 2);

  const start = tf.memory().numTensors;
  const loaded = await loadAdapter(dir, TINY);
  if (loaded.kind !== 'last_layers') throw new Error('expected last_layers');
  assert.equal(loaded.numLayers, 1);
  assert.equal(loaded.baseModel, 'tiny-gpt2');
  assert.deepEqual([...loaded.blocks.keys()], [1]);
  const [saved, read] = [adapter.blocks.get(1)!, loaded.blocks.get(1)!];
  assert.ok(!isLlamaBlock(saved) && !isLlamaBlock(read) && isLayerNorm(loaded.lnF) && isLayerNorm(adapter.lnF));
  const want = blockNamed(saved);
  for (const [name, t] of Object.entries(blockNamed(read))) {
    assert.deepEqual(t.shape, want[name].shape, name);
    assert.deepEqual(await t.data(), await want[name].data(), name);
  }
  assert.deepEqual(await loaded.lnF.weight.data(), await adapter.lnF.weight.data());
  assert.deepEqual(await loaded.lnF.bias.data(), await adapter.lnF.bias.data());

  const opts = (a: typeof loaded) => ({ blockOverrides: a.blocks, lnF: a.lnF });
  const ours = await take(forward(TINY, base, rowInput(IDS), opts(loaded)));
  const same = await take(forward(TINY, base, rowInput(IDS), opts(adapter as typeof loaded)));
  assert.deepEqual(ours, same, 'the loaded adapter computes exactly what the saved one did');
  const ref = (await peftLogits(modelDir, dir, IDS)).flat();
  assert.ok(maxAbsDiff(ours, ref) < 1e-4, `max |ours - numpy| = ${maxAbsDiff(ours, ref)}`);
  assert.ok(maxAbsDiff((await referenceLogits(modelDir, IDS)).flat(), ref) > 1e-2, 'the adapter has a visible effect');

  disposeAdapter(loaded);
  assert.equal(tf.memory().numTensors, start);
  disposeAdapter(adapter);
});

test('a last_layers adapter over every layer round-trips too', TIMEOUT, async () => {
  const adapter = initLastLayersAdapter(base, TINY.nLayer);
  const dir = join(root, 'all');
  await saveAdapter(dir, adapter);
  const loaded = await loadAdapter(dir, TINY);
  if (loaded.kind !== 'last_layers') throw new Error('expected last_layers');
  assert.deepEqual([...loaded.blocks.keys()].sort(), [0, 1]);
  // Copies of the base: the same logits as the base itself.
  const plain = await take(forward(TINY, base, rowInput(IDS)));
  const withIt = await take(forward(TINY, base, rowInput(IDS), { blockOverrides: loaded.blocks, lnF: loaded.lnF }));
  assert.deepEqual(withIt, plain);
  disposeAdapter(adapter);
  disposeAdapter(loaded);
});
