import { readFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { InvalidArgument, NotFound } from '../../common/errors.js';
import type { Adapter, LoraAdapterConfig } from '../adapter.js';
import { type GptConfig, hfTensorShapes } from '../gpt-config.js';
import { type DecoderBlockWeights, type HostTensors, isLlamaBlock } from '../gpt-weights.js';
import { type FamilyModules, familyModules, GPT2_MODULES, LLAMA_MODULES, targetModuleNames } from '../family-modules.js';
import { loraScale, type LoraModule, type LoraTarget } from '../lora.js';
import { selectModules } from './peft-target-modules.js';
import { readSafetensors, writeFileAtomic, writeSafetensors, type HostTensor } from './safetensors.js';
import { writeFolderAtomic } from './write-folder-atomic.js';

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

/** The config file of an adapter folder. */
export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
/** The tensor file of an adapter folder. */
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
/** peft_type of gentune's `last_layers` adapters. */
export const LAST_LAYERS_PEFT_TYPE = 'LAST_LAYERS';

/** What PEFT puts before the LM-head model's module paths. */
const PEFT_PREFIX = 'base_model.model.';
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** A key of an adapter of `family`: [, name under the root, layer, module tensor under the block]; the root may be left out. */
const keyPattern = (family: FamilyModules) =>
  new RegExp(`^${escape(PEFT_PREFIX)}(?:${escape(family.root)})?(${family.layers}\\.(\\d+)\\.(.+)|${family.finalNorm}\\.(?:weight|bias))$`);
/** A LoRA tensor under a block: [, target, A or B]. */
const loraParamPattern = (family: FamilyModules) => new RegExp(`^(${family.targets.map(escape).join('|')})\\.lora_([AB])\\.weight$`);
// Settings that would change what the adapter computes and that LoraWeights cannot express.
const UNSUPPORTED: Record<string, string> = {
  use_dora: 'DoRA', lora_bias: 'LoRA biases', rank_pattern: 'per-module ranks', alpha_pattern: 'per-module alphas',
  modules_to_save: 'modules_to_save', layer_replication: 'layer_replication', trainable_token_indices: 'trainable tokens',
  target_parameters: 'target_parameters', alora_invocation_tokens: 'aLoRA',
};

type Json = Record<string, unknown>;
const isJson = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const isPosInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;
const nLayerNote = (config: GptConfig) => `(the base model has n_layer=${config.nLayer})`;
const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

function transpose2d(data: ArrayLike<number>, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = data[i * cols + j];
  return out;
}

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
  const family = adapterFamily(adapter, base);
  const { config, tensors } = adapter.kind === 'lora' ? await loraFiles(adapter, family, base) : await lastLayersFiles(adapter, family, base);
  await writeFolderAtomic(dir, async (tmp) => {
    await writeSafetensors(join(tmp, ADAPTER_WEIGHTS_FILE), tensors, { metadata: { format: 'pt' } });
    await writeFileAtomic(join(tmp, ADAPTER_CONFIG_FILE), [JSON.stringify(config, null, 2) + '\n']);
  });
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
export interface LoadAdapterOptions {
  /**
   * Read the files with synchronous I/O (default false): a serving thread
   * loading an adapter would otherwise wait one decode step per read.
   */
  blocking?: boolean;
}

/**
 * Reads an adapter folder written by PEFT (LoRA) or by {@link saveAdapter} and
 * uploads it to the backend; the caller owns the result (see disposeAdapter).
 * Everything is validated against the base model's `config` before any tensor is
 * uploaded. F16/BF16 files are widened to float32.
 * @throws NotFound if a file is missing; InvalidArgument naming the file and the
 *   field or tensor for an unknown peft_type, an unsupported setting, an unknown
 *   target module, a missing, unexpected or misshapen tensor, a rank that differs
 *   from `r`, a layer index out of range, a tensor of a module target_modules
 *   does not select, or a target module or key the base model's family lacks
 *   (`c_attn` on a Llama-family model, `q_proj` on GPT-2).
 */
export async function loadAdapter(dir: string, config: GptConfig, options: LoadAdapterOptions = {}): Promise<Adapter> {
  const configPath = join(dir, ADAPTER_CONFIG_FILE);
  const f = fields(await readJson(configPath, options.blocking ?? false), configPath);
  const peftType = f.raw.peft_type;
  if (peftType !== 'LORA' && peftType !== LAST_LAYERS_PEFT_TYPE) {
    const supported = `(supported: LORA, ${LAST_LAYERS_PEFT_TYPE})`;
    throw new InvalidArgument(`${configPath}: unknown \`peft_type\` ${JSON.stringify(peftType)} ${supported}`);
  }
  const baseModel = f.get('base_model_name_or_path', '', (v) => typeof v === 'string', 'a string');
  f.get('task_type', 'CAUSAL_LM', (v) => v === 'CAUSAL_LM', '"CAUSAL_LM"');
  const family = familyModules(config);
  // Read once the config's fields are checked: a config for modules the model lacks is named as such, not by its keys.
  const tensors = () => readAdapterTensors(dir, config, family, options.blocking ?? false);
  return peftType === 'LORA' ? loraFrom(f, tensors, config, family, baseModel) : lastLayersFrom(f, tensors, config, family, baseModel);
}

/** Typed access to adapter_config.json fields; errors name the file, the field and the value. */
function fields(raw: Json, file: string) {
  return {
    raw,
    file,
    /** raw[key] (`fallback` when null or absent, as PEFT's defaults), checked by `ok`. */
    get<T>(key: string, fallback: T, ok: (v: unknown) => boolean, want: string): T {
      const v = raw[key] ?? fallback;
      if (!ok(v)) throw new InvalidArgument(`${file}: \`${key}\` must be ${want}, got ${JSON.stringify(raw[key])}`);
      return v as T;
    },
  };
}
type Fields = ReturnType<typeof fields>;

/** An adapter file's tensors by name under the model root (`h.0.attn.c_attn.lora_A.weight`, `layers.0.…`), and how to look one up. */
interface AdapterTensors {
  file: string;
  byName: Map<string, { name: string; t: HostTensor; layer?: number; rest?: string }>;
  /** The tensor `key`, or InvalidArgument if it is missing or not of shape `want`. */
  expect(key: string, want: number[], why?: string): HostTensor;
}

async function readAdapterTensors(dir: string, config: GptConfig, family: FamilyModules, blocking: boolean): Promise<AdapterTensors> {
  const file = join(dir, ADAPTER_WEIGHTS_FILE);
  let tensors: Map<string, HostTensor>;
  try {
    ({ tensors } = await readSafetensors(file, { blocking }));
  } catch (err) {
    const pickle = await stat(join(dir, 'adapter_model.bin')).then(() => true, () => false);
    if (err instanceof NotFound && pickle) {
      throw new InvalidArgument(`${dir}: holds adapter_model.bin (a pickle); only ${ADAPTER_WEIGHTS_FILE} is supported`, { cause: err });
    }
    throw err;
  }
  const byName: AdapterTensors['byName'] = new Map();
  const key = keyPattern(family);
  const prefix = `${PEFT_PREFIX}${family.root}`;
  for (const [name, t] of tensors) {
    const m = key.exec(name);
    if (!m) {
      const want = `want \`${prefix}${family.layers}.{i}.…\` names: it matches no module of a ${family.label} model`;
      throw new InvalidArgument(`${file}: unexpected tensor \`${name}\` (${want})`);
    }
    const layer = m[2] === undefined ? undefined : Number(m[2]);
    if (layer !== undefined && (layer >= config.nLayer || String(layer) !== m[2])) {
      throw new InvalidArgument(`${file}: tensor \`${name}\`: layer index ${m[2]} is out of range ${nLayerNote(config)}`);
    }
    if (byName.has(m[1])) throw new InvalidArgument(`${file}: tensor \`${m[1]}\` appears both with and without \`${family.root}\``);
    byName.set(m[1], { name, t, layer, rest: m[3] });
  }
  const expect = (key: string, want: number[], why = ''): HostTensor => {
    const e = byName.get(key);
    if (!e) throw new InvalidArgument(`${file}: missing tensor \`${prefix}${key}\``);
    if (!sameShape(e.t.shape, want)) {
      throw new InvalidArgument(`${file}: tensor \`${e.name}\` has shape [${e.t.shape}], expected [${want}]${why}`);
    }
    return e.t;
  };
  return { file, byName, expect };
}

async function lastLayersFrom(
  f: Fields,
  readTensors: () => Promise<AdapterTensors>,
  config: GptConfig,
  family: FamilyModules,
  baseModel: string,
): Promise<Adapter> {
  const n = config.nLayer;
  const numLayers = f.get<number>('num_layers', 0, (v) => isPosInt(v) && v <= n, `an integer in [1, ${n}] (the base model's n_layer)`);
  const tensors = await readTensors();
  const first = n - numLayers;
  // The checkpoint's tensors of the top blocks and the final norm, by name under the model root.
  const shapes = new Map<string, number[]>();
  const blockOf = new RegExp(`^${family.layers}\\.(\\d+)\\.`);
  for (const [name, shape] of hfTensorShapes(config)) {
    const bare = name.slice(family.checkpointRoot.length);
    if (!name.startsWith(family.checkpointRoot)) continue;
    if (bare.startsWith(`${family.finalNorm}.`) || Number(blockOf.exec(bare)?.[1] ?? -1) >= first) shapes.set(bare, shape);
  }
  for (const [key, e] of tensors.byName) {
    if (!shapes.has(key)) {
      const note = `(num_layers=${numLayers} replaces blocks ${first}..${n - 1} and ${family.finalNorm})`;
      throw new InvalidArgument(`${tensors.file}: unexpected tensor \`${e.name}\` ${note}`);
    }
  }
  // Validated: only now upload, through the loader of the family's checkpoints (which transposes nn.Linear weights).
  const host: HostTensors = new Map();
  for (const [key, shape] of shapes) host.set(`${family.checkpointRoot}${key}`, tensors.expect(key, shape));
  const blocks = new Map<number, DecoderBlockWeights>();
  for (let i = first; i < n; i++) blocks.set(i, family.blockFromHost(config, host, i));
  return { kind: 'last_layers', numLayers, blocks, lnF: family.finalNormFromHost(host), baseModel };
}

async function loraFrom(
  f: Fields,
  readTensors: () => Promise<AdapterTensors>,
  config: GptConfig,
  family: FamilyModules,
  baseModel: string,
): Promise<Adapter> {
  for (const [key, what] of Object.entries(UNSUPPORTED)) {
    const v = f.raw[key];
    if (!(v == null || v === false || (Array.isArray(v) && v.length === 0) || (isJson(v) && Object.keys(v).length === 0))) {
      throw new InvalidArgument(`${f.file}: \`${key}\` (${what}) is not supported, got ${JSON.stringify(v)}`);
    }
  }
  f.get('bias', 'none', (v) => v === 'none', '"none"');
  // Absent fields take PEFT's LoraConfig defaults.
  const r = f.get<number>('r', 8, isPosInt, 'a positive integer');
  const loraAlpha = f.get<number>('lora_alpha', 8, (v) => typeof v === 'number' && Number.isFinite(v), 'a number');
  const loraDropout = f.get<number>('lora_dropout', 0, (v) => typeof v === 'number' && v >= 0 && v < 1, 'a number in [0, 1)');
  const useRslora = f.get<boolean>('use_rslora', false, (v) => typeof v === 'boolean', 'true or false');
  f.get('fan_in_fan_out', true, (v) => typeof v === 'boolean', 'true or false');
  const selected = selectModules(f.raw, config, family, f.file);
  const tensors = await readTensors();

  const spec = JSON.stringify(f.raw.target_modules ?? null);
  const loraParam = loraParamPattern(family);
  for (const e of tensors.byName.values()) {
    const m = e.rest === undefined ? null : loraParam.exec(e.rest);
    if (!m) {
      const holds = `a LoRA adapter of a ${family.label} model holds only lora_A.weight / lora_B.weight of ${family.targets.join(', ')}`;
      throw new InvalidArgument(`${tensors.file}: unexpected tensor \`${e.name}\` (${holds})`);
    }
    if (!selected.has(`${e.layer}.${m[1]}`)) {
      const which = `which \`target_modules\` ${spec} in ${ADAPTER_CONFIG_FILE} does not select`;
      throw new InvalidArgument(`${tensors.file}: tensor \`${e.name}\` adapts \`${family.layers}.${e.layer}.${m[1]}\`, ${which}`);
    }
    const rank = e.t.shape[m[2] === 'A' ? 0 : 1];
    if (e.t.shape.length === 2 && rank !== r) {
      const says = `but ${ADAPTER_CONFIG_FILE} says r=${r}`;
      throw new InvalidArgument(`${tensors.file}: tensor \`${e.name}\` has shape [${e.t.shape}]: rank ${rank}, ${says}`);
    }
  }
  const host: { key: string; target: LoraTarget; a: HostTensor; b: HostTensor }[] = [];
  for (const key of selected) {
    const target = key.slice(key.indexOf('.') + 1) as LoraTarget;
    const [din, dout] = family.dims(config, target);
    const why = ` for ${target} of [${din}, ${dout}] (in, out), r=${r}`;
    const a = tensors.expect(`${family.layers}.${key}.lora_A.weight`, [r, din], why);
    host.push({ key, target, a, b: tensors.expect(`${family.layers}.${key}.lora_B.weight`, [dout, r], why) });
  }
  // Validated: only now upload, as our a = A^T [in, r] and b = B^T [r, out].
  const modules = new Map<string, LoraModule>();
  for (const { key, a, b } of host) {
    const [din, dout] = [a.shape[1], b.shape[0]];
    modules.set(key, { a: tf.tensor2d(transpose2d(a.data, r, din), [din, r]), b: tf.tensor2d(transpose2d(b.data, dout, r), [r, dout]) });
  }
  const targets = family.targets.filter((t) => host.some((p) => p.target === t));
  const scale = loraScale(r, loraAlpha, useRslora);
  const loraConfig: LoraAdapterConfig = { r, loraAlpha, loraDropout, targetModules: targets, useRslora };
  return { kind: 'lora', config: loraConfig, lora: { r, alpha: loraAlpha, scale, targets, modules }, baseModel };
}

async function readJson(path: string, blocking: boolean): Promise<Json> {
  let text: string;
  try {
    text = blocking ? readFileSync(path, 'utf8') : await readFile(path, 'utf8');
  } catch (err) {
    throw (err as NodeJS.ErrnoException).code === 'ENOENT' ? new NotFound(`${path}: no such file`, { cause: err }) : err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new InvalidArgument(`${path}: not valid JSON (${(err as Error).message})`, { cause: err });
  }
  if (!isJson(json)) throw new InvalidArgument(`${path}: expected a JSON object`);
  return json;
}
