import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { InvalidArgument, NotFound } from '../../../../src/common/errors.js';
import { disposeAdapter } from '../../../../src/model/adapter.js';
import { initLastLayersAdapter } from '../../../../src/model/adapter-init.js';
import { loadAdapter, saveAdapter } from '../../../../src/model/checkpoint/peft-adapter.js';
import { type HostTensor, readSafetensors, writeSafetensors } from '../../../../src/model/checkpoint/safetensors.js';
import { disposeWeights } from '../../../../src/model/gpt-weights.js';
import { testBackend, TINY, tinyModelFolder, tinyWeights } from '../../../helpers/tiny-model.js';
import { makePeftAdapter } from './peft-reference.js';

// Each case copies a valid adapter folder, breaks one thing, and expects
// InvalidArgument naming the file and the field or tensor, with nothing left on
// the backend.

const P = 'base_model.model.transformer.h';
const TIMEOUT = { timeout: 120_000 };
let root: string;
let modelDir: string;
let lora: string;
let last: string;
let n = 0;

before(async () => {
  await testBackend();
  root = await mkdtemp(join(tmpdir(), 'gentune-peft-errors-'));
  modelDir = await tinyModelFolder(TINY, 31);
  lora = join(root, 'lora');
  await makePeftAdapter(modelDir, lora, { r: 4, lora_alpha: 8, target_modules: ['c_attn'], seed: 4 });
  last = join(root, 'last');
  const weights = tinyWeights(TINY, 32);
  const adapter = initLastLayersAdapter(weights, 1);
  await saveAdapter(last, adapter, TINY);
  disposeAdapter(adapter);
  disposeWeights(weights);
});

after(async () => {
  await rm(root, { recursive: true, force: true });
  await rm(modelDir, { recursive: true, force: true });
});

interface Breakage {
  config?: (c: Record<string, unknown>) => void;
  tensors?: (t: Map<string, HostTensor>) => void;
}

async function broken(src: string, how: Breakage): Promise<string> {
  const dir = join(root, `case-${n++}`);
  await cp(src, dir, { recursive: true });
  if (how.config) {
    const path = join(dir, 'adapter_config.json');
    const c = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
    how.config(c);
    await writeFile(path, JSON.stringify(c));
  }
  if (how.tensors) {
    const path = join(dir, 'adapter_model.safetensors');
    const { tensors } = await readSafetensors(path);
    how.tensors(tensors);
    await writeSafetensors(path, tensors);
  }
  return dir;
}

async function rejects(dir: string, file: 'adapter_config.json' | 'adapter_model.safetensors', message: RegExp): Promise<void> {
  const before = tf.memory().numTensors;
  await assert.rejects(loadAdapter(dir, TINY), (err: unknown) => {
    assert.ok(err instanceof InvalidArgument, `InvalidArgument, got ${String(err)}`);
    assert.ok(err.message.includes(join(dir, file)), `names ${file}: ${err.message}`);
    assert.match(err.message, message);
    return true;
  });
  assert.equal(tf.memory().numTensors, before, 'nothing uploaded');
}

const zeros = (shape: number[]): HostTensor => ({ shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
const d = TINY.nEmbd;

const cases: [string, string, Breakage, 'adapter_config.json' | 'adapter_model.safetensors', RegExp][] = [
  ['unknown peft_type', 'lora', { config: (c) => (c.peft_type = 'IA3') }, 'adapter_config.json', /unknown `peft_type` "IA3"/],
  ['missing key', 'lora', { tensors: (t) => t.delete(`${P}.1.attn.c_attn.lora_B.weight`) }, 'adapter_model.safetensors', /missing tensor `base_model\.model\.transformer\.h\.1\.attn\.c_attn\.lora_B\.weight`/],
  [
    'wrong shape for the base config',
    'lora',
    { tensors: (t) => t.set(`${P}.0.attn.c_attn.lora_A.weight`, zeros([4, d + 1])) },
    'adapter_model.safetensors',
    /tensor `base_model\.model\.transformer\.h\.0\.attn\.c_attn\.lora_A\.weight` has shape \[4,33\], expected \[4,32\]/,
  ],
  ['r mismatch', 'lora', { config: (c) => (c.r = 8) }, 'adapter_model.safetensors', /lora_A\.weight` has shape \[4,32\]: rank 4, but adapter_config\.json says r=8/],
  ['unknown target module', 'lora', { config: (c) => (c.target_modules = ['c_attn', 'q_proj']) }, 'adapter_config.json', /unknown target module "q_proj"/],
  ['a module LoRA cannot adapt here', 'lora', { config: (c) => (c.target_modules = ['wte']) }, 'adapter_config.json', /unknown target module "wte"/],
  [
    'layer index out of range (tensor)',
    'lora',
    { tensors: (t) => { t.set(`${P}.2.attn.c_attn.lora_A.weight`, zeros([4, d])); } },
    'adapter_model.safetensors',
    /tensor `base_model\.model\.transformer\.h\.2\.attn\.c_attn\.lora_A\.weight`: layer index 2 is out of range \(the base model has n_layer=2\)/,
  ],
  ['layer index out of range (layers_to_transform)', 'lora', { config: (c) => (c.layers_to_transform = [0, 7]) }, 'adapter_config.json', /`layers_to_transform`: layer index 7 is out of range/],
  [
    'a key of a module not in target_modules',
    'lora',
    { tensors: (t) => { t.set(`${P}.0.mlp.c_fc.lora_A.weight`, zeros([4, d])); t.set(`${P}.0.mlp.c_fc.lora_B.weight`, zeros([4 * d, 4])); } },
    'adapter_model.safetensors',
    /adapts `h\.0\.mlp\.c_fc`, which `target_modules` \["c_attn"\] in adapter_config\.json does not select/,
  ],
  [
    'an unexpected tensor',
    'lora',
    { tensors: (t) => { t.set(`${P}.0.attn.c_attn.lora_magnitude_vector`, zeros([3 * d])); } },
    'adapter_model.safetensors',
    /unexpected tensor `base_model\.model\.transformer\.h\.0\.attn\.c_attn\.lora_magnitude_vector`/,
  ],
  ['a name outside base_model.model.', 'lora', { tensors: (t) => { t.set('transformer.h.0.attn.c_attn.lora_A.weight', zeros([4, d])); } }, 'adapter_model.safetensors', /unexpected tensor `transformer\.h\.0/],
  ['DoRA', 'lora', { config: (c) => (c.use_dora = true) }, 'adapter_config.json', /`use_dora` \(DoRA\) is not supported/],
  ['per-module ranks', 'lora', { config: (c) => (c.rank_pattern = { c_attn: 2 }) }, 'adapter_config.json', /`rank_pattern` \(per-module ranks\) is not supported/],
  ['bias', 'lora', { config: (c) => (c.bias = 'all') }, 'adapter_config.json', /`bias` must be "none", got "all"/],
  ['r not a positive integer', 'lora', { config: (c) => (c.r = 0) }, 'adapter_config.json', /`r` must be a positive integer, got 0/],
  ['lora_alpha not a number', 'lora', { config: (c) => (c.lora_alpha = '16') }, 'adapter_config.json', /`lora_alpha` must be a number, got "16"/],
  ['task_type', 'lora', { config: (c) => (c.task_type = 'SEQ_CLS') }, 'adapter_config.json', /`task_type` must be "CAUSAL_LM", got "SEQ_CLS"/],
  ['a bad regex', 'lora', { config: (c) => (c.target_modules = '(c_attn') }, 'adapter_config.json', /`target_modules` is not a valid regular expression/],
  ['last_layers: num_layers beyond the base', 'last', { config: (c) => (c.num_layers = 3) }, 'adapter_config.json', /`num_layers` must be an integer in \[1, 2\]/],
  ['last_layers: missing ln_f', 'last', { tensors: (t) => t.delete('base_model.model.transformer.ln_f.bias') }, 'adapter_model.safetensors', /missing tensor `base_model\.model\.transformer\.ln_f\.bias`/],
  ['last_layers: a block below the top num_layers', 'last', { tensors: (t) => t.set(`${P}.0.ln_1.bias`, zeros([d])) }, 'adapter_model.safetensors', /unexpected tensor `base_model\.model\.transformer\.h\.0\.ln_1\.bias` \(num_layers=1 replaces blocks 1\.\.1 and ln_f\)/],
  [
    'last_layers: wrong shape',
    'last',
    { tensors: (t) => t.set(`${P}.1.mlp.c_fc.weight`, zeros([d, 2 * d])) },
    'adapter_model.safetensors',
    /tensor `base_model\.model\.transformer\.h\.1\.mlp\.c_fc\.weight` has shape \[32,64\], expected \[32,128\]/,
  ],
];

for (const [name, src, how, file, message] of cases) {
  test(`loadAdapter rejects ${name}`, TIMEOUT, async () => {
    await rejects(await broken(src === 'lora' ? lora : last, how), file, message);
  });
}

test('loadAdapter: a missing folder or config is NotFound; a pickle-only adapter and bad JSON are InvalidArgument', TIMEOUT, async () => {
  await assert.rejects(loadAdapter(join(root, 'nowhere'), TINY), NotFound);
  const pickle = await broken(lora, {});
  await rename(join(pickle, 'adapter_model.safetensors'), join(pickle, 'adapter_model.bin'));
  await assert.rejects(loadAdapter(pickle, TINY), (err: unknown) => err instanceof InvalidArgument && /adapter_model\.bin \(a pickle\)/.test(err.message));
  const json = await broken(lora, {});
  await writeFile(join(json, 'adapter_config.json'), '{"peft_type": "LORA",');
  await rejects(json, 'adapter_config.json', /not valid JSON/);
});

test('the valid folders the cases start from do load', TIMEOUT, async () => {
  for (const dir of [lora, last]) disposeAdapter(await loadAdapter(dir, TINY));
});
