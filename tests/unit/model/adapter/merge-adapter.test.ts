import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { InvalidArgument } from '../../../../src/common/errors.js';
import { disposeAdapter } from '../../../../src/model/adapter.js';
import { initLoraAdapter } from '../../../../src/model/adapter-init.js';
import { loadAdapter } from '../../../../src/model/checkpoint/peft-adapter.js';
import { readGpt2Folder } from '../../../../src/model/checkpoint/hf-gpt2-folder.js';
import { forward } from '../../../../src/model/gpt.js';
import { disposeWeights, type Gpt2Weights, namedWeights, weightsFromHost } from '../../../../src/model/gpt-weights.js';
import { mergeLora, unmergeLora } from '../../../../src/model/merge-adapter.js';
import { testBackend, TINY, tinyModelFolder } from '../../../helpers/tiny-model.js';
import { makePeftAdapter, maxAbsDiff, peftLogits, rowInput, take } from './peft-reference.js';

const IDS = [5, 17, 200, 33, 9, 120, 64, 1, 250, 77];
let root: string;
let modelDir: string;
let base: Gpt2Weights;

before(async () => {
  await testBackend();
  root = await mkdtemp(join(tmpdir(), 'gentune-merge-'));
  modelDir = await tinyModelFolder(TINY, 41);
  const ckpt = await readGpt2Folder(modelDir);
  base = weightsFromHost(ckpt.config, ckpt.tensors);
});

after(async () => {
  disposeWeights(base);
  await rm(root, { recursive: true, force: true });
  await rm(modelDir, { recursive: true, force: true });
});

async function snapshot(w: Gpt2Weights): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [name, t] of namedWeights(w)) out.set(name, (await t.data()) as Float32Array);
  return out;
}

test('merged weights give the unmerged adapter\'s logits; unmerge restores the base within 1e-6', { timeout: 120_000 }, async () => {
  const dir = join(root, 'peft');
  await makePeftAdapter(modelDir, dir, { r: 4, lora_alpha: 6, use_rslora: true, target_modules: ['c_attn', 'c_proj', 'c_fc'], seed: 9 });
  const adapter = await loadAdapter(dir, TINY);
  if (adapter.kind !== 'lora') throw new Error('expected lora');
  const baseBefore = await snapshot(base);
  const start = tf.memory().numTensors;

  const merged = mergeLora(base, adapter.lora);
  const viaSegment = await take(forward(TINY, base, rowInput(IDS), { segments: [{ start: 0, count: 1, lora: adapter.lora }] }));
  const viaMerge = await take(forward(TINY, merged.weights, rowInput(IDS)));
  assert.ok(maxAbsDiff(viaMerge, viaSegment) < 1e-4, `merged vs segment: ${maxAbsDiff(viaMerge, viaSegment)}`);
  assert.ok(maxAbsDiff(viaMerge, (await peftLogits(modelDir, dir, IDS)).flat()) < 1e-4, 'merged vs numpy PEFT');
  // Unadapted tensors are shared, adapted ones are new.
  assert.equal(merged.weights.wte, base.wte);
  assert.equal(merged.weights.blocks[0].ln_1, base.blocks[0].ln_1);
  assert.equal(merged.weights.blocks[0].c_attn.bias, base.blocks[0].c_attn.bias);
  assert.notEqual(merged.weights.blocks[0].c_attn.weight, base.blocks[0].c_attn.weight);

  const restored = unmergeLora(merged.weights, adapter.lora);
  const after = await snapshot(restored.weights);
  let worst = 0;
  for (const [name, want] of baseBefore) worst = Math.max(worst, maxAbsDiff(after.get(name)!, want));
  assert.ok(worst <= 1e-6, `unmerge restores within 1e-6, got ${worst}`);
  // The input weights were not modified.
  for (const [name, data] of await snapshot(base)) assert.deepEqual(data, baseBefore.get(name), name);

  restored.dispose();
  merged.dispose();
  assert.equal(tf.memory().numTensors, start, 'dispose frees exactly what the merges created');
  for (const t of namedWeights(base).values()) assert.equal(t.isDisposed, false);
  disposeAdapter(adapter);
});

test('merging keeps frozen weights\' precomputed transposes in step', async () => {
  const adapter = initLoraAdapter(TINY, { r: 2, loraAlpha: 4, loraDropout: 0, targetModules: ['mlp.c_fc'], useRslora: false }, { seed: 3, init: false });
  const frozen: Gpt2Weights = { ...base, blocks: base.blocks.map((b) => ({ ...b, c_fc: { ...b.c_fc, weightT: tf.transpose(b.c_fc.weight) } })) };
  const merged = mergeLora(frozen, adapter.lora);
  for (const b of merged.weights.blocks) {
    const diff = maxAbsDiff(await b.c_fc.weightT!.data(), await tf.transpose(b.c_fc.weight).data());
    assert.equal(diff, 0);
  }
  const viaSegment = await take(forward(TINY, frozen, rowInput(IDS), { segments: [{ start: 0, count: 1, lora: adapter.lora }] }));
  const viaMerge = await take(forward(TINY, merged.weights, rowInput(IDS)));
  assert.ok(maxAbsDiff(viaMerge, viaSegment) < 1e-4);
  merged.dispose();
  for (const b of frozen.blocks) b.c_fc.weightT!.dispose();
  disposeAdapter(adapter);
});

test('merging an adapter that does not fit the weights is InvalidArgument and creates nothing', () => {
  const adapter = initLoraAdapter({ ...TINY, nLayer: 3 }, { r: 2, loraAlpha: 4, loraDropout: 0, targetModules: ['attn.c_attn'], useRslora: false }, { seed: 1 });
  const start = tf.memory().numTensors;
  assert.throws(() => mergeLora(base, adapter.lora), (err: unknown) => err instanceof InvalidArgument && /layer 2 is out of range/.test(err.message));
  const wide = initLoraAdapter({ ...TINY, nEmbd: 16, nHead: 2 }, { r: 2, loraAlpha: 4, loraDropout: 0, targetModules: ['attn.c_attn'], useRslora: false }, { seed: 1 });
  const start2 = tf.memory().numTensors;
  assert.throws(() => mergeLora(base, wide.lora), (err: unknown) => err instanceof InvalidArgument && /do not fit a \[32,96\] weight/.test(err.message));
  assert.equal(tf.memory().numTensors, start2);
  disposeAdapter(adapter);
  disposeAdapter(wide);
  assert.ok(tf.memory().numTensors < start);
});
