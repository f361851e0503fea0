import { join } from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import { writeFileSynced, writeFolderAtomic } from '../../common/atomic-write.js';
import { InvalidArgument } from '../../common/errors.js';
import type { Adapter } from '../adapter.js';
import type { GptConfig } from '../gpt-config.js';
import { isLlamaBlock } from '../gpt-weights.js';
import { type FamilyModules, familyModules, GPT2_MODULES, LLAMA_MODULES, targetModuleNames } from '../family-modules.js';
import { loraScale, type LoraTarget } from '../lora.js';
import {
  ADAPTER_CONFIG_FILE,
  ADAPTER_WEIGHTS_FILE,
  checkAdapter,
  type CheckAdapterOptions,
  LAST_LAYERS_PEFT_TYPE,
  PEFT_PREFIX,
  sameShape,
  transpose2d,
  uploadAdapter,
} from './peft-adapter-check.js';
import { readSafetensors, writeSafetensors, type HostTensor } from './safetensors.js';

export { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, checkAdapter, LAST_LAYERS_PEFT_TYPE } from './peft-adapter-check.js';

type Json = Record<string, unknown>;

/**
 * Adapters on disk in PEFT's layout: `adapter_config.json` + `adapter_model.safetensors`.
 * What PEFT does, from huggingface/peft's source:
 * - utils/save_and_load.py `get_peft_model_state_dict` keeps the `lora_` entries of
 *   `PeftModel.state_dict()` and strips the adapter name (`c_attn.lora_A.default.weight`
 *   -> `c_attn.lora_A.weight`); PeftModel.base_model (LoraModel).model (GPT2LMHeadModel)
 *   makes the key `base_model.model.transformer.h.{i}.attn.c_attn.lora_A.weight`.
 * - tuners/lora/layer.py: for a `Conv1D` base layer `in_features, out_features =
 *   base_layer.weight.shape` (GPT-2 stores [in, out]); `lora_A = nn.Linear(in_features, r)`
 *   so lora_A.weight is [r, in]; `lora_B = nn.Linear(r, out_features)`, [out, r].
 *   fan_in_fan_out only enters `get_delta_weight`: `transpose(B @ A, fan_in_fan_out) *
 *   scaling`, so the [in, out] weight gains scaling * A^T B^T, scaling = lora_alpha / r
 *   (lora_alpha / sqrt(r) with use_rslora). tuners/lora/model.py forces fan_in_fan_out
 *   to True for Conv1D ("Setting fan_in_fan_out to True."): its value is moot here.
 * - tuners_utils.py `check_target_module_exists`: a list entry selects a module named
 *   it or ending in `.entry` (`c_proj` selects attn.c_proj and mlp.c_proj); a string is
 *   a regex to fully match; `layers_to_transform` then keeps those layers only.
 * - The Llama family (LlamaForCausalLM: `model.layers.{i}.self_attn.q_proj`, ...) is the
 *   same with nn.Linear base layers, [out, in]: keys
 *   `base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight` [r, in] and
 *   `lora_B.weight` [out, r], fan_in_fan_out false (its delta is scaling * B A), and
 *   PEFT's default target_modules q_proj, v_proj. What differs per family is data
 *   (family-modules.ts): module paths, targets, sizes.
 *
 * `last_layers` adapters are gentune's own (peft_type "LAST_LAYERS", which PEFT cannot
 * load): adapter_config.json `{peft_type, task_type: "CAUSAL_LM", num_layers,
 * base_model_name_or_path, inference_mode}`, and the top `num_layers` blocks' and the
 * final norm's tensors in checkpoint layout under `base_model.model.` + their module
 * paths (`transformer.h.11.attn.c_attn.weight`, `model.layers.11.self_attn.q_proj.weight`
 * [out, in], `transformer.ln_f.weight`, `model.norm.weight`), so that stripping the
 * prefix gives names that overwrite the base checkpoint's tensors.
 */

/**
 * Writes an adapter folder in PEFT's layout (see the file comment), atomically: the
 * files go to a hidden sibling folder that then replaces `dir` (created, or swapped
 * with the old one, which is then removed), so readers never see a mix of versions.
 * `base`, when given, checks the shapes and lets a LoRA adapter that covers every
 * layer be written without `layers_to_transform`; without it, modules over layers
 * 0..k-1 are taken to be all layers.
 * @throws InvalidArgument if the adapter is inconsistent (its r, alpha or scale
 *   disagree, a module key is malformed or not of `base`'s family, or its layers
 *   differ between targets).
 */
export async function saveAdapter(dir: string, adapter: Adapter, base?: GptConfig): Promise<void> {
  await writeFolderAtomic(dir, (tmp) => writeAdapterFiles(tmp, adapter, base));
}

/**
 * Writes an adapter's files (fsynced) into `dir`, an empty temporary folder
 * that the caller renames into place (as {@link saveAdapter} and the adapter
 * store do). @throws as saveAdapter does.
 */
export async function writeAdapterFiles(dir: string, adapter: Adapter, base?: GptConfig): Promise<void> {
  const family = adapterFamily(adapter, base);
  const { config, tensors } = adapter.kind === 'lora' ? await loraFiles(adapter, family, base) : await lastLayersFiles(adapter, family, base);
  await writeSafetensors(join(dir, ADAPTER_WEIGHTS_FILE), tensors, { metadata: { format: 'pt' } });
  await writeFileSynced(join(dir, ADAPTER_CONFIG_FILE), JSON.stringify(config, null, 2) + '\n');
}

interface AdapterFiles {
  config: Json;
  tensors: Map<string, HostTensor>;
}

/** The family an adapter is for: `base`'s (which it must fit), else the one its modules or blocks are of. */
function adapterFamily(adapter: Adapter, base?: GptConfig): FamilyModules {
  let own: FamilyModules;
  if (adapter.kind === 'last_layers') {
    own = [...adapter.blocks.values()].some(isLlamaBlock) ? LLAMA_MODULES : GPT2_MODULES;
  } else {
    const targets = [...adapter.lora.modules.keys()].map((k) => k.slice(k.indexOf('.') + 1));
    own = targets.some((t) => (LLAMA_MODULES.targets as readonly string[]).includes(t)) ? LLAMA_MODULES : GPT2_MODULES;
  }
  const family = base ? familyModules(base) : own;
  if (family !== own) throw new InvalidArgument(`adapter: a ${own.label} adapter does not fit a ${family.label} base model`);
  return family;
}

async function loraFiles(adapter: Adapter & { kind: 'lora' }, family: FamilyModules, base?: GptConfig): Promise<AdapterFiles> {
  const { config: c, lora } = adapter;
  const { r } = lora;
  if (c.r !== r || c.loraAlpha !== lora.alpha || Math.abs(loraScale(c.r, c.loraAlpha, c.useRslora) - lora.scale) > 1e-6 * lora.scale) {
    throw new InvalidArgument(
      `adapter: r=${r}, alpha=${lora.alpha}, scale=${lora.scale} disagree with its config ` +
        `(r=${c.r}, lora_alpha=${c.loraAlpha}, use_rslora=${c.useRslora})`,
    );
  }
  const tensors = new Map<string, HostTensor>();
  const layersOf = new Map<LoraTarget, number[]>();
  for (const [key, m] of lora.modules) {
    const [, layer, t] = /^(\d+)\.(.+)$/.exec(key) ?? [];
    const target = t as LoraTarget;
    if (layer === undefined || !family.targets.includes(target)) {
      throw new InvalidArgument(`adapter: malformed module key \`${key}\` (not a module of a ${family.label} model)`);
    }
    const [din, dout] = base ? family.dims(base, target) : [m.a.shape[0], m.b.shape[1]];
    if (!sameShape(m.a.shape, [din, r]) || !sameShape(m.b.shape, [r, dout])) {
      const want = `expected [${din},${r}] and [${r},${dout}]`;
      throw new InvalidArgument(`adapter: module \`${key}\` has a [${m.a.shape}] and b [${m.b.shape}], ${want}`);
    }
    layersOf.set(target, [...(layersOf.get(target) ?? []), Number(layer)]);
    const name = `${PEFT_PREFIX}${family.root}${family.layers}.${layer}.${target}`;
    tensors.set(`${name}.lora_A.weight`, { shape: [r, din], data: transpose2d(await m.a.data(), din, r) });
    tensors.set(`${name}.lora_B.weight`, { shape: [dout, r], data: transpose2d(await m.b.data(), r, dout) });
  }
  // PEFT's list form selects target x layer products: every target must cover the same layers.
  const lists = [...layersOf.values()].map((l) => l.sort((x, y) => x - y).join(','));
  if (lists.length === 0 || lists.some((l) => l !== lists[0])) {
    const got = [...layersOf].map(([t, l]) => `${t}: [${l}]`).join('; ');
    throw new InvalidArgument(`adapter: every target must adapt the same layers (got ${got || 'no modules'})`);
  }
  const layers = [...layersOf.values()][0];
  const all = base ? layers.length === base.nLayer : layers.every((l, i) => l === i);
  // PEFT's LoraConfig fields, sorted as its save_pretrained writes them.
  const config: Json = {
    alpha_pattern: {}, base_model_name_or_path: adapter.baseModel, bias: 'none', fan_in_fan_out: family.fanInFanOut,
    inference_mode: true, init_lora_weights: true, layers_pattern: all ? null : family.layers, layers_to_transform: all ? null : layers,
    lora_alpha: c.loraAlpha, lora_dropout: c.loraDropout, modules_to_save: null, peft_type: 'LORA', r, rank_pattern: {}, revision: null,
    target_modules: targetModuleNames(family, [...layersOf.keys()]), task_type: 'CAUSAL_LM', use_dora: false, use_rslora: c.useRslora,
  };
  return { config, tensors };
}

async function lastLayersFiles(adapter: Adapter & { kind: 'last_layers' }, family: FamilyModules, base?: GptConfig): Promise<AdapterFiles> {
  const { numLayers } = adapter;
  const layers = [...adapter.blocks.keys()].sort((a, b) => a - b);
  if (layers.length !== numLayers || layers.some((l, i) => l !== layers[0] + i) || (base && layers.at(-1) !== base.nLayer - 1)) {
    throw new InvalidArgument(`adapter: num_layers=${numLayers} but it holds blocks [${layers}], which are not the top ${numLayers}`);
  }
  // Checkpoint names and layout: the Llama family's projection weights go back to [out, in].
  const named: { name: string; t: tf.Tensor; transposed: boolean }[] = [];
  const collect = (t: tf.Tensor, role: { name: string; transposed: boolean }) => {
    named.push({ name: `${PEFT_PREFIX}${family.root}${role.name.slice(family.checkpointRoot.length)}`, t, transposed: role.transposed });
    return t;
  };
  for (const i of layers) family.mapBlock(adapter.blocks.get(i)!, i, collect);
  family.mapFinalNorm(adapter.lnF, collect);
  const tensors = new Map<string, HostTensor>();
  for (const { name, t, transposed } of named) {
    const data = (await t.data()) as Float32Array;
    const [rows, cols] = t.shape;
    tensors.set(name, transposed ? { shape: [cols, rows], data: transpose2d(data, rows, cols) } : { shape: t.shape.slice(), data });
  }
  const config = {
    base_model_name_or_path: adapter.baseModel, inference_mode: true, num_layers: numLayers, peft_type: LAST_LAYERS_PEFT_TYPE, task_type: 'CAUSAL_LM',
  };
  return { config, tensors };
}

/** Options of {@link loadAdapter}. */
export interface LoadAdapterOptions extends CheckAdapterOptions {
  /**
   * Read the weights with synchronous I/O (default false): a serving thread
   * loading an adapter would otherwise wait one decode step per read. The
   * config and the weights' header are always read so (a few small reads).
   */
  blocking?: boolean;
}

/**
 * Reads an adapter folder written by PEFT (LoRA) or by {@link saveAdapter} and
 * uploads it to the backend; the caller owns the result (see disposeAdapter).
 * Everything is validated against the base model's `config` (checkAdapter,
 * peft-adapter-check.ts) before any tensor is uploaded. F16/BF16 files are
 * widened to float32.
 * @throws as checkAdapter does.
 */
export async function loadAdapter(dir: string, config: GptConfig, options: LoadAdapterOptions = {}): Promise<Adapter> {
  const plan = checkAdapter(dir, config, options);
  const { tensors } = await readSafetensors(plan.file, { blocking: options.blocking, noFollow: options.noFollow, include: (n) => plan.names.has(n) });
  return uploadAdapter(plan, tensors, config);
}
