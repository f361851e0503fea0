import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { type Adapter, disposeAdapter } from '../../../../src/model/adapter.js';
import { initLoraAdapter } from '../../../../src/model/adapter-init.js';
import { loadAdapter, saveAdapter } from '../../../../src/model/checkpoint/peft-adapter.js';
import { readGpt2Folder } from '../../../../src/model/checkpoint/hf-gpt2-folder.js';
import { forward } from '../../../../src/model/gpt.js';
import type { LoraModule } from '../../../../src/model/lora.js';
import { disposeWeights, type GptWeights, weightsFromHost } from '../../../../src/model/gpt-weights.js';
import { referenceLogits } from '../../../reference/numpy-reference.js';
import { testBackend, TINY, tinyModelFolder } from '../../../helpers/tiny-model.js';
import { inspectAdapter, makePeftAdapter, maxAbsDiff, type PeftSpec, peftLogits, rowInput, take } from './peft-reference.js';

const IDS = [72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 256, 3];
const TIMEOUT = { timeout: 120_000 };
let root: string;
let modelDir: string;
let base: GptWeights;

before(async () => {
  await testBackend();
  root = await mkdtemp(join(tmpdir(), 'gentune-peft-'));
  modelDir = await tinyModelFolder(TINY, 21);
  const ckpt = await readGpt2Folder(modelDir);
  base = weightsFromHost(ckpt.config, ckpt.tensors);
});

after(async () => {
  disposeWeights(base);
  await rm(root, { recursive: true, force: true });
  await rm(modelDir, { recursive: true, force: true });
});

async function loraLogits(adapter: Adapter): Promise<Float32Array> {
  assert.equal(adapter.kind, 'lora');
  if (adapter.kind !== 'lora') throw new Error('unreachable');
  return take(forward(TINY, base, rowInput(IDS), { segments: [{ start: 0, count: 1, lora: adapter.lora }] }));
}

const cases: { name: string; spec: PeftSpec; targets: string[]; scale: number }[] = [
  { name: 'c_attn, alpha/r, BF16', spec: { r: 4, lora_alpha: 8, target_modules: ['c_attn'], seed: 1, dtype: 'BF16' }, targets: ['attn.c_attn'], scale: 2 },
  {
    name: 'rsLoRA (alpha/sqrt(r)) over c_attn, c_proj (both), c_fc',
    spec: { r: 4, lora_alpha: 6, use_rslora: true, target_modules: ['c_attn', 'c_proj', 'c_fc'], seed: 2 },
    targets: ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'],
    scale: 3,
  },
  {
    name: 'full suffixes, layers_to_transform, F16, keys without transformer.',
    spec: { r: 2, lora_alpha: 5, target_modules: ['attn.c_proj', 'mlp.c_fc'], layers_to_transform: [1], dtype: 'F16', prefix: 'base_model.model.', seed: 3 },
    targets: ['attn.c_proj', 'mlp.c_fc'],
    scale: 2.5,
  },
];

for (const c of cases) {
  test(`a PEFT adapter written by the numpy reference gives its logits to 1e-4: ${c.name}`, TIMEOUT, async () => {
    const dir = join(root, `peft-${c.spec.seed}`);
    await makePeftAdapter(modelDir, dir, c.spec);
    const stored = Object.values((await inspectAdapter(dir)).tensors).map((t) => t.dtype);
    assert.deepEqual(new Set(stored), new Set([c.spec.dtype ?? 'F32']), 'the file holds the dtype under test');
    const before = tf.memory().numTensors;
    const adapter = await loadAdapter(dir, TINY);
    assert.equal(adapter.kind, 'lora');
    if (adapter.kind !== 'lora') return;
    assert.deepEqual(adapter.config.targetModules, c.targets);
    assert.equal(adapter.config.r, c.spec.r);
    assert.equal(adapter.config.useRslora, c.spec.use_rslora ?? false);
    assert.equal(adapter.lora.scale, c.scale);
    assert.equal(adapter.config.loraDropout, 0.05);
    assert.equal(adapter.baseModel, 'tiny-gpt2');
    const layers = c.spec.layers_to_transform ?? [0, 1];
    assert.deepEqual([...adapter.lora.modules.keys()].sort(), layers.flatMap((l) => c.targets.map((t) => `${l}.${t}`)).sort());

    const ours = await loraLogits(adapter);
    const ref = (await peftLogits(modelDir, dir, IDS)).flat();
    const diff = maxAbsDiff(ours, ref);
    assert.ok(diff < 1e-4, `max |ours - numpy PEFT| = ${diff}`);
    // The adapter changes the logits far beyond the tolerance, so the check has teeth.
    const plain = (await referenceLogits(modelDir, IDS)).flat();
    assert.ok(maxAbsDiff(plain, ref) > 1e-2, 'adapter has a visible effect');
    disposeAdapter(adapter);
    assert.equal(tf.memory().numTensors, before);
  });
}

test('rsLoRA scaling is what makes the logits match (alpha/r would not)', TIMEOUT, async () => {
  const dir = join(root, 'peft-2');
  const adapter = await loadAdapter(dir, TINY);
  if (adapter.kind !== 'lora') throw new Error('expected lora');
  adapter.lora.scale = adapter.config.loraAlpha / adapter.config.r;
  const wrong = await loraLogits(adapter);
  const ref = (await peftLogits(modelDir, dir, IDS)).flat();
  assert.ok(maxAbsDiff(wrong, ref) > 1e-3);
  disposeAdapter(adapter);
});

test('save -> load round-trips a LoRA adapter exactly, in files Python reads with PEFT key names', TIMEOUT, async () => {
  const config = { r: 3, loraAlpha: 12, loraDropout: 0.1, targetModules: ['attn.c_attn', 'mlp.c_proj'] as const, useRslora: false };
  const adapter = initLoraAdapter(TINY, { ...config, targetModules: [...config.targetModules] }, { seed: 5, init: false, baseModel: 'tiny-gpt2' });
  const dir = join(root, 'saved-lora');
  await saveAdapter(dir, adapter, TINY);
  const loaded = await loadAdapter(dir, TINY);
  if (loaded.kind !== 'lora') throw new Error('expected lora');
  assert.deepEqual(loaded.config, adapter.config);
  assert.equal(loaded.baseModel, 'tiny-gpt2');
  assert.equal(loaded.lora.scale, adapter.lora.scale);
  assert.deepEqual([...loaded.lora.modules.keys()].sort(), [...adapter.lora.modules.keys()].sort());
  for (const [key, m] of adapter.lora.modules) {
    const l: LoraModule = loaded.lora.modules.get(key)!;
    assert.deepEqual(l.a.shape, m.a.shape);
    assert.deepEqual(await l.a.data(), await m.a.data(), `${key}.a`);
    assert.deepEqual(await l.b.data(), await m.b.data(), `${key}.b`);
  }

  const { config: json, tensors } = await inspectAdapter(dir);
  assert.equal(json.peft_type, 'LORA');
  assert.equal(json.task_type, 'CAUSAL_LM');
  assert.equal(json.r, 3);
  assert.equal(json.lora_alpha, 12);
  assert.equal(json.lora_dropout, 0.1);
  assert.equal(json.fan_in_fan_out, true);
  assert.equal(json.bias, 'none');
  assert.equal(json.use_rslora, false);
  assert.equal(json.inference_mode, true);
  assert.equal(json.layers_to_transform, null);
  assert.equal(json.base_model_name_or_path, 'tiny-gpt2');
  assert.deepEqual(json.target_modules, ['c_attn', 'mlp.c_proj']);
  const d = TINY.nEmbd;
  const want: Record<string, { dtype: string; shape: number[] }> = {};
  for (let i = 0; i < TINY.nLayer; i++) {
    const p = `base_model.model.transformer.h.${i}.`;
    want[`${p}attn.c_attn.lora_A.weight`] = { dtype: 'F32', shape: [3, d] };
    want[`${p}attn.c_attn.lora_B.weight`] = { dtype: 'F32', shape: [3 * d, 3] };
    want[`${p}mlp.c_proj.lora_A.weight`] = { dtype: 'F32', shape: [3, 4 * d] };
    want[`${p}mlp.c_proj.lora_B.weight`] = { dtype: 'F32', shape: [d, 3] };
  }
  assert.deepEqual(tensors, want);
  // PEFT's reading of the saved files gives our logits: what PEFT would compute with them.
  const diff = maxAbsDiff(await loraLogits(adapter), (await peftLogits(modelDir, dir, IDS)).flat());
  assert.ok(diff < 1e-4, `max |ours - numpy PEFT| = ${diff}`);
  disposeAdapter(adapter);
  disposeAdapter(loaded);
});

test('a PEFT adapter re-saved here keeps its tensors bit for bit and its short target names', TIMEOUT, async () => {
  const src = join(root, 'peft-2');
  const first = await loadAdapter(src, TINY);
  const dir = join(root, 'resaved');
  await saveAdapter(dir, first);
  const { config, tensors } = await inspectAdapter(dir);
  const orig = await inspectAdapter(src);
  assert.deepEqual(tensors, orig.tensors);
  assert.deepEqual(config.target_modules, ['c_attn', 'c_proj', 'c_fc']);
  assert.equal(config.use_rslora, true);
  const a = await readFile(join(src, 'adapter_model.safetensors'));
  const b = await readFile(join(dir, 'adapter_model.safetensors'));
  const body = (buf: Buffer) => buf.subarray(8 + Number(buf.readBigUInt64LE(0)));
  assert.ok(body(a).equals(body(b)), 'same tensor bytes');
  disposeAdapter(first);
});

test('saving over an existing adapter folder replaces it atomically and leaves no temporary files', TIMEOUT, async () => {
  const parent = join(root, 'store');
  const dir = join(parent, 'v1');
  const mk = (seed: number, targets: ('attn.c_attn' | 'mlp.c_fc')[]) =>
    initLoraAdapter(TINY, { r: 2, loraAlpha: 4, loraDropout: 0, targetModules: targets, useRslora: false }, { seed, init: false });
  const one = mk(1, ['attn.c_attn']);
  const two = mk(2, ['mlp.c_fc']);
  await saveAdapter(dir, one);
  await saveAdapter(dir, two);
  assert.deepEqual(await readdir(parent), ['v1']);
  assert.deepEqual((await readdir(dir)).sort(), ['adapter_config.json', 'adapter_model.safetensors']);
  const loaded = await loadAdapter(dir, TINY);
  if (loaded.kind !== 'lora') throw new Error('expected lora');
  assert.deepEqual(loaded.config.targetModules, ['mlp.c_fc']);
  assert.deepEqual(await loaded.lora.modules.get('1.mlp.c_fc')!.b.data(), await two.lora.modules.get('1.mlp.c_fc')!.b.data());
  for (const a of [one, two, loaded]) disposeAdapter(a);
});

test('an adapter over some layers only is saved with layers_to_transform', TIMEOUT, async () => {
  const adapter = initLoraAdapter(TINY, { r: 2, loraAlpha: 2, loraDropout: 0, targetModules: ['attn.c_proj', 'mlp.c_proj'], useRslora: false }, { seed: 8, init: false, layers: [1] });
  const dir = join(root, 'layer1');
  await saveAdapter(dir, adapter, TINY);
  const { config } = await inspectAdapter(dir);
  assert.deepEqual(config.layers_to_transform, [1]);
  assert.deepEqual(config.target_modules, ['c_proj']);
  const loaded = await loadAdapter(dir, TINY);
  if (loaded.kind !== 'lora') throw new Error('expected lora');
  assert.deepEqual([...loaded.lora.modules.keys()].sort(), ['1.attn.c_proj', '1.mlp.c_proj']);
  const diff = maxAbsDiff(await loraLogits(loaded), (await peftLogits(modelDir, dir, IDS)).flat());
  assert.ok(diff < 1e-4, `max |ours - numpy PEFT| = ${diff}`);
  disposeAdapter(adapter);
  disposeAdapter(loaded);
});
