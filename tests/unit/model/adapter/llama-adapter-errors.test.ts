import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { InvalidArgument } from '../../../../src/common/errors.js';
import { disposeAdapter } from '../../../../src/model/adapter.js';
import { initLastLayersAdapter, initLoraAdapter } from '../../../../src/model/adapter-init.js';
import { loadAdapter, saveAdapter } from '../../../../src/model/checkpoint/peft-adapter.js';
import { type HostTensor, readSafetensors, writeSafetensors } from '../../../../src/model/checkpoint/safetensors.js';
import type { GptConfig } from '../../../../src/model/gpt-config.js';
import { disposeWeights, weightsFromHost } from '../../../../src/model/gpt-weights.js';
import { forward } from '../../../../src/model/gpt.js';
import type { LoraTarget } from '../../../../src/model/lora.js';
import { trainMethod } from '../../../../src/engine/job-training.js';
import { createTrainable } from '../../../../src/training/trainable.js';
import { makeLlamaPeftAdapter } from '../../../reference/numpy-reference.js';
import { testBackend, TINY, tinyModelFolder, tinyWeights } from '../../../helpers/tiny-model.js';
import { llamaConfig, llamaModelFolder, llamaTensors, QWEN2_LIKE } from '../../../helpers/llama-model.js';
import { makePeftAdapter, rowInput } from './peft-reference.js';

// An adapter for modules the base model lacks is refused with InvalidArgument
// naming the module or key, whichever family either side is, and nothing is
// left on the backend. Each case copies a valid folder and breaks one thing.

const LLAMA = llamaConfig(QWEN2_LIKE);
const TIMEOUT = { timeout: 120_000 };
const P = 'base_model.model.model.layers';
const d = LLAMA.nEmbd;
let root: string;
let gpt2Dir: string;
let llamaDir: string;
/** A PEFT LoRA adapter of each family: GPT-2's on c_attn, the Llama model's on q_proj and v_proj. */
let gpt2Lora: string;
let llamaLora: string;
/** A last_layers adapter of each family (the top block). */
let gpt2Last: string;
let llamaLast: string;
let n = 0;

before(async () => {
  await testBackend();
  root = await mkdtemp(join(tmpdir(), 'gentune-llama-errors-'));
  gpt2Dir = await tinyModelFolder(TINY, 71);
  llamaDir = await llamaModelFolder(QWEN2_LIKE, 72);
  gpt2Lora = join(root, 'gpt2-lora');
  await makePeftAdapter(gpt2Dir, gpt2Lora, { r: 4, lora_alpha: 8, target_modules: ['c_attn'], seed: 73 });
  llamaLora = join(root, 'llama-lora');
  await makeLlamaPeftAdapter(llamaDir, llamaLora, { r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'], seed: 74 });
  gpt2Last = join(root, 'gpt2-last');
  llamaLast = join(root, 'llama-last');
  const g = tinyWeights(TINY, 75);
  const l = weightsFromHost(LLAMA, llamaTensors(QWEN2_LIKE, 76));
  for (const [dir, weights, config] of [[gpt2Last, g, TINY], [llamaLast, l, LLAMA]] as const) {
    const a = initLastLayersAdapter(weights, 1);
    await saveAdapter(dir, a, config);
    disposeAdapter(a);
    disposeWeights(weights);
  }
});

after(async () => {
  for (const dir of [root, gpt2Dir, llamaDir]) await rm(dir, { recursive: true, force: true });
});

interface Breakage {
  config?: (c: Record<string, unknown>) => void;
  tensors?: (t: Map<string, HostTensor>) => void;
}

async function broken(src: string, how: Breakage = {}): Promise<string> {
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

/** InvalidArgument whose message matches `message`; nothing uploaded. */
function invalid(message: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof InvalidArgument, `InvalidArgument, got ${String(err)}`);
    assert.match(err.message, message);
    return true;
  };
}

async function rejects(dir: string, config: GptConfig, message: RegExp): Promise<void> {
  const before = tf.memory().numTensors;
  await assert.rejects(loadAdapter(dir, config), invalid(message));
  assert.equal(tf.memory().numTensors, before, 'nothing uploaded');
}

const zeros = (shape: number[]): HostTensor => ({ shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
/** Renames every tensor of a file. */
const renamed = (f: (name: string) => string) => (t: Map<string, HostTensor>) => {
  const entries = [...t];
  t.clear();
  for (const [name, v] of entries) t.set(f(name), v);
};

const cases: [string, () => string, GptConfig, Breakage, RegExp][] = [
  ['GPT-2\'s c_attn in target_modules of a Llama-family model', () => llamaLora, LLAMA, { config: (c) => (c.target_modules = ['q_proj', 'c_attn']) },
    /adapter_config\.json: unknown target module "c_attn" in `target_modules`: a Llama-family model has no such module \(its LoRA targets: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj\)/],
  ['a GPT-2 PEFT adapter on a Llama-family model', () => gpt2Lora, LLAMA, {}, /unknown target module "c_attn" in `target_modules`: a Llama-family model has no such module/],
  ['a Llama PEFT adapter on GPT-2', () => llamaLora, TINY, {}, /unknown target module "q_proj" in `target_modules`: a GPT-2 model has no such module/],
  ['GPT-2 keys under a Llama target list', () => llamaLora, LLAMA, { tensors: renamed((k) => k.replace('model.layers', 'transformer.h').replace('self_attn.q_proj', 'attn.c_attn')) },
    /unexpected tensor `base_model\.model\.transformer\.h\.0\.attn\.c_attn\.lora_A\.weight` \(want `base_model\.model\.model\.layers\.\{i\}\.…` names: it matches no module of a Llama-family model\)/],
  ['Llama keys under GPT-2\'s target list', () => gpt2Lora, TINY, { tensors: renamed((k) => k.replace('transformer.h', 'model.layers').replace('attn.c_attn', 'self_attn.q_proj')) },
    /unexpected tensor `base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight` \(want `base_model\.model\.transformer\.h\.\{i\}\.…` names: it matches no module of a GPT-2 model\)/],
  ['a key of a module the Llama block lacks', () => llamaLora, LLAMA, { tensors: (t) => t.set(`${P}.0.self_attn.qkv_proj.lora_A.weight`, zeros([4, d])) },
    /unexpected tensor `base_model\.model\.model\.layers\.0\.self_attn\.qkv_proj\.lora_A\.weight` \(a LoRA adapter of a Llama-family model holds only lora_A\.weight \/ lora_B\.weight of self_attn\.q_proj, /],
  ['a Llama module target_modules does not select', () => llamaLora, LLAMA,
    { tensors: (t) => { t.set(`${P}.1.mlp.up_proj.lora_A.weight`, zeros([4, d])); t.set(`${P}.1.mlp.up_proj.lora_B.weight`, zeros([LLAMA.nInner, 4])); } },
    /adapts `layers\.1\.mlp\.up_proj`, which `target_modules` \["q_proj","v_proj"\] in adapter_config\.json does not select/],
  ['v_proj\'s B as wide as q_proj\'s (no GQA)', () => llamaLora, LLAMA, { tensors: (t) => t.set(`${P}.0.self_attn.v_proj.lora_B.weight`, zeros([d, 4])) },
    /tensor `base_model\.model\.model\.layers\.0\.self_attn\.v_proj\.lora_B\.weight` has shape \[64,4\], expected \[32,4\] for self_attn\.v_proj of \[64, 32\] \(in, out\), r=4/],
  ['GPT-2\'s layers_pattern', () => llamaLora, LLAMA, { config: (c) => { c.layers_to_transform = [0]; c.layers_pattern = 'h'; } }, /`layers_pattern` must be "layers" for a Llama-family model, got "h"/],
  ['a GPT-2 last_layers adapter on a Llama-family model', () => gpt2Last, LLAMA, {}, /unexpected tensor `base_model\.model\.transformer\.h\.1\.[^`]+` \(want `base_model\.model\.model\.layers\.\{i\}\.…` names: it matches no module of a Llama-family model/],
  ['a Llama last_layers adapter on GPT-2', () => llamaLast, TINY, {}, /unexpected tensor `base_model\.model\.model\.layers\.1\.[^`]+` \(want `base_model\.model\.transformer\.h\.\{i\}\.…` names: it matches no module of a GPT-2 model/],
  ['a Llama last_layers adapter missing its final norm', () => llamaLast, LLAMA, { tensors: (t) => t.delete('base_model.model.model.norm.weight') }, /missing tensor `base_model\.model\.model\.norm\.weight`/],
  ['a Llama last_layers adapter with a layer below its top block', () => llamaLast, LLAMA, { tensors: (t) => t.set(`${P}.0.input_layernorm.weight`, zeros([d])) },
    /unexpected tensor `base_model\.model\.model\.layers\.0\.input_layernorm\.weight` \(num_layers=1 replaces blocks 1\.\.1 and norm\)/],
];

for (const [name, src, config, how, message] of cases) {
  test(`loadAdapter refuses ${name}`, TIMEOUT, async () => {
    await rejects(await broken(src(), how), config, message);
  });
}

test('the folders the cases start from load on their own family, and a Llama target list left out means PEFT\'s q_proj, v_proj', TIMEOUT, async () => {
  for (const [dir, config] of [[gpt2Lora, TINY], [llamaLora, LLAMA], [gpt2Last, TINY], [llamaLast, LLAMA]] as const) disposeAdapter(await loadAdapter(dir, config));
  const bare = await loadAdapter(await broken(llamaLora, { config: (c) => delete c.target_modules }), LLAMA);
  assert.deepEqual(bare.kind === 'lora' && bare.config.targetModules, ['self_attn.q_proj', 'self_attn.v_proj']);
  disposeAdapter(bare);
});

test('making, training, saving and running an adapter refuse the other family\'s modules, naming them', async () => {
  const before = tf.memory().numTensors;
  const lora = (targetModules: string[]) => ({ r: 2, loraAlpha: 4, loraDropout: 0, targetModules: targetModules as LoraTarget[], useRslora: false });
  assert.throws(() => initLoraAdapter(LLAMA, lora(['attn.c_attn']), { seed: 1 }), invalid(/got "attn\.c_attn" \(a Llama-family model has no module "attn\.c_attn"\)/));
  assert.throws(() => initLoraAdapter(TINY, lora(['self_attn.q_proj']), { seed: 1 }), invalid(/got "self_attn\.q_proj" \(a GPT-2 model has no module "self_attn\.q_proj"\)/));
  const weights = weightsFromHost(LLAMA, llamaTensors(QWEN2_LIKE, 77));
  const method = { kind: 'lora', r: 2, alpha: 4, dropout: 0, targetModules: ['mlp.c_fc'] as LoraTarget[] } as const;
  assert.throws(() => createTrainable(LLAMA, weights, method, { seed: 1 }), invalid(/got "mlp\.c_fc" \(a Llama-family model has no module "mlp\.c_fc"\)/));
  const engine = (targetModules: string[]) => ({ kind: 'lora' as const, targetModules });
  assert.throws(() => trainMethod(engine(['c_attn']), LLAMA), invalid(/`target_modules\[0\]` must be one of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, got "c_attn"/));
  assert.throws(() => trainMethod(engine(['c_fc', 'q_proj']), TINY), invalid(/`target_modules\[1\]` must be one of c_attn, c_proj, attn\.c_proj, c_fc, mlp\.c_proj, got "q_proj"/));
  assert.deepEqual(trainMethod(engine([]), LLAMA).kind === 'lora' && trainMethod(engine([]), LLAMA), {
    kind: 'lora', r: 8, alpha: 16, dropout: 0.05, targetModules: ['self_attn.q_proj', 'self_attn.v_proj'],
  });

  const ours = initLoraAdapter(LLAMA, lora(['self_attn.q_proj']), { seed: 2 });
  await assert.rejects(saveAdapter(join(root, 'never'), ours, TINY), invalid(/a Llama-family adapter does not fit a GPT-2 base model/));
  const gpt2 = tinyWeights(TINY, 78);
  const top = initLastLayersAdapter(gpt2, 1);
  assert.throws(() => forward(LLAMA, weights, rowInput([1, 2, 3]), { blockOverrides: top.blocks, lnF: top.lnF }), /a last_layers adapter's blocks of another family/);
  disposeAdapter(top);
  disposeWeights(gpt2);
  disposeAdapter(ours);
  disposeWeights(weights);
  assert.equal(tf.memory().numTensors, before);
});
