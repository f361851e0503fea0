import { readFileSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { InvalidArgument, NotFound } from '../../common/errors.js';
import type { Adapter, LoraAdapterConfig } from '../adapter.js';
import { type GptConfig, hfTensorShapes } from '../gpt-config.js';
import { blockNamed, type BlockWeights, gpt2Config, type LayerNormWeights } from '../gpt-weights.js';
import { LORA_TARGETS, loraScale, type LoraModule, type LoraTarget } from '../lora.js';
import { readSafetensors, writeFileAtomic, writeSafetensors, type HostTensor } from './safetensors.js';

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
 *
 * `last_layers` adapters are gentune's own (peft_type "LAST_LAYERS", which PEFT cannot
 * load): adapter_config.json `{peft_type, task_type: "CAUSAL_LM", num_layers,
 * base_model_name_or_path, inference_mode}`, and the top `num_layers` blocks' and
 * ln_f's tensors under `base_model.model.transformer.` + their Hugging Face names, so
 * that stripping the prefix gives names that overwrite the base checkpoint's tensors.
 */

/** The config file of an adapter folder. */
export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
/** The tensor file of an adapter folder. */
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
/** peft_type of gentune's `last_layers` adapters. */
export const LAST_LAYERS_PEFT_TYPE = 'LAST_LAYERS';

const PREFIX = 'base_model.model.transformer.';
const KEY = /^base_model\.model\.(?:transformer\.)?(h\.(\d+)\.(.+)|ln_f\.(?:weight|bias))$/;
const LORA_PARAM = /^(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.lora_([AB])\.weight$/;
// Settings that would change what the adapter computes and that LoraWeights cannot express.
const UNSUPPORTED: Record<string, string> = {
  use_dora: 'DoRA', lora_bias: 'LoRA biases', rank_pattern: 'per-module ranks', alpha_pattern: 'per-module alphas',
  modules_to_save: 'modules_to_save', layer_replication: 'layer_replication', trainable_token_indices: 'trainable tokens',
  target_parameters: 'target_parameters', alora_invocation_tokens: 'aLoRA',
};

// BlockWeights fields -> Hugging Face module names within `h.{i}.`.
const BLOCK_MODULES: Record<keyof BlockWeights, string> = {
  ln_1: 'ln_1', c_attn: 'attn.c_attn', attn_c_proj: 'attn.c_proj', ln_2: 'ln_2', c_fc: 'mlp.c_fc', mlp_c_proj: 'mlp.c_proj',
};

type Json = Record<string, unknown>;
const isJson = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const isPosInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;
const nLayerNote = (config: GptConfig) => `(the base model has n_layer=${config.nLayer})`;
const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/** [in, out] of an adapted projection. */
function targetDims(config: GptConfig, target: LoraTarget): [number, number] {
  const d = config.nEmbd;
  const dims: Record<LoraTarget, [number, number]> = {
    'attn.c_attn': [d, 3 * d], 'attn.c_proj': [d, d], 'mlp.c_fc': [d, 4 * d], 'mlp.c_proj': [4 * d, d],
  };
  return dims[target];
}

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
 *   disagree, a module key is malformed, or its layers differ between targets).
 */
export async function saveAdapter(dir: string, adapter: Adapter, base?: GptConfig): Promise<void> {
  if (base) gpt2Config(base, 'an adapter');
  const { config, tensors } = adapter.kind === 'lora' ? await loraFiles(adapter, base) : await lastLayersFiles(adapter, base);
  await writeFolderAtomic(dir, async (tmp) => {
    await writeSafetensors(join(tmp, ADAPTER_WEIGHTS_FILE), tensors, { metadata: { format: 'pt' } });
    await writeFileAtomic(join(tmp, ADAPTER_CONFIG_FILE), [JSON.stringify(config, null, 2) + '\n']);
  });
}

interface AdapterFiles {
  config: Json;
  tensors: Map<string, HostTensor>;
}

async function loraFiles(adapter: Adapter & { kind: 'lora' }, base?: GptConfig): Promise<AdapterFiles> {
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
    if (layer === undefined || !LORA_TARGETS.includes(target)) throw new InvalidArgument(`adapter: malformed module key \`${key}\``);
    const [din, dout] = base ? targetDims(base, target) : [m.a.shape[0], m.b.shape[1]];
    if (!sameShape(m.a.shape, [din, r]) || !sameShape(m.b.shape, [r, dout])) {
      const want = `expected [${din},${r}] and [${r},${dout}]`;
      throw new InvalidArgument(`adapter: module \`${key}\` has a [${m.a.shape}] and b [${m.b.shape}], ${want}`);
    }
    layersOf.set(target, [...(layersOf.get(target) ?? []), Number(layer)]);
    const name = `${PREFIX}h.${layer}.${target}`;
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
    alpha_pattern: {}, base_model_name_or_path: adapter.baseModel, bias: 'none', fan_in_fan_out: true, inference_mode: true,
    init_lora_weights: true, layers_pattern: all ? null : 'h', layers_to_transform: all ? null : layers, lora_alpha: c.loraAlpha,
    lora_dropout: c.loraDropout, modules_to_save: null, peft_type: 'LORA', r, rank_pattern: {}, revision: null,
    target_modules: peftTargetNames([...layersOf.keys()]), task_type: 'CAUSAL_LM', use_dora: false, use_rslora: c.useRslora,
  };
  return { config, tensors };
}

async function lastLayersFiles(adapter: Adapter & { kind: 'last_layers' }, base?: GptConfig): Promise<AdapterFiles> {
  const { numLayers } = adapter;
  const layers = [...adapter.blocks.keys()].sort((a, b) => a - b);
  if (layers.length !== numLayers || layers.some((l, i) => l !== layers[0] + i) || (base && layers.at(-1) !== base.nLayer - 1)) {
    throw new InvalidArgument(`adapter: num_layers=${numLayers} but it holds blocks [${layers}], which are not the top ${numLayers}`);
  }
  const named = new Map<string, tf.Tensor>([[`${PREFIX}ln_f.weight`, adapter.lnF.weight], [`${PREFIX}ln_f.bias`, adapter.lnF.bias]]);
  for (const [i, b] of adapter.blocks) for (const [name, t] of Object.entries(blockNamed(b))) named.set(`${PREFIX}h.${i}.${name}`, t);
  const tensors = new Map<string, HostTensor>();
  for (const [name, t] of named) tensors.set(name, { shape: t.shape.slice(), data: (await t.data()) as Float32Array });
  const config = {
    base_model_name_or_path: adapter.baseModel, inference_mode: true, num_layers: numLayers, peft_type: LAST_LAYERS_PEFT_TYPE, task_type: 'CAUSAL_LM',
  };
  return { config, tensors };
}

/** The target_modules PEFT users write for GPT-2: bare names, unless `c_proj` would select too much. */
function peftTargetNames(targets: LoraTarget[]): string[] {
  const has = (t: LoraTarget) => targets.includes(t);
  const names: string[] = [];
  if (has('attn.c_attn')) names.push('c_attn');
  if (has('attn.c_proj') && has('mlp.c_proj')) names.push('c_proj');
  else if (has('attn.c_proj')) names.push('attn.c_proj');
  else if (has('mlp.c_proj')) names.push('mlp.c_proj');
  if (has('mlp.c_fc')) names.push('c_fc');
  return names;
}

async function writeFolderAtomic(dir: string, write: (tmp: string) => Promise<void>): Promise<void> {
  const target = resolve(dir);
  const parent = dirname(target);
  const tag = `${process.pid}.${randomBytes(6).toString('hex')}`;
  const tmp = join(parent, `.${basename(target)}.${tag}.tmp`);
  await mkdir(parent, { recursive: true });
  await mkdir(tmp);
  try {
    await write(tmp);
    try {
      await rename(tmp, target);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
      // A folder cannot be renamed over a non-empty one: swap it out, then drop it.
      const old = join(parent, `.${basename(target)}.${tag}.old`);
      await rename(target, old);
      try {
        await rename(tmp, target);
      } catch (err2) {
        await rename(old, target);
        throw err2;
      }
      await rm(old, { recursive: true, force: true });
    }
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
  // Persist the rename; best effort, as some platforms cannot fsync a directory.
  await open(parent, 'r').then((d) => d.sync().finally(() => d.close())).catch(() => undefined);
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
 *   from `r`, a layer index out of range, or a tensor of a module target_modules
 *   does not select; FailedPrecondition for a Llama-family base model (not yet).
 */
export async function loadAdapter(dir: string, config: GptConfig, options: LoadAdapterOptions = {}): Promise<Adapter> {
  gpt2Config(config, 'an adapter'); // GPT-2's module names and shapes only, so far
  const configPath = join(dir, ADAPTER_CONFIG_FILE);
  const f = fields(await readJson(configPath, options.blocking ?? false), configPath);
  const peftType = f.raw.peft_type;
  if (peftType !== 'LORA' && peftType !== LAST_LAYERS_PEFT_TYPE) {
    const supported = `(supported: LORA, ${LAST_LAYERS_PEFT_TYPE})`;
    throw new InvalidArgument(`${configPath}: unknown \`peft_type\` ${JSON.stringify(peftType)} ${supported}`);
  }
  const baseModel = f.get('base_model_name_or_path', '', (v) => typeof v === 'string', 'a string');
  f.get('task_type', 'CAUSAL_LM', (v) => v === 'CAUSAL_LM', '"CAUSAL_LM"');
  const tensors = await readAdapterTensors(dir, config, options.blocking ?? false);
  return peftType === 'LORA' ? loraFrom(f, tensors, config, baseModel) : lastLayersFrom(f, tensors, config, baseModel);
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

/** An adapter file's tensors by bare name (`h.0.attn.c_attn.lora_A.weight`), and how to look one up. */
interface AdapterTensors {
  file: string;
  byName: Map<string, { name: string; t: HostTensor; layer?: number; rest?: string }>;
  /** The tensor `key`, or InvalidArgument if it is missing or not of shape `want`. */
  expect(key: string, want: number[], why?: string): HostTensor;
}

async function readAdapterTensors(dir: string, config: GptConfig, blocking: boolean): Promise<AdapterTensors> {
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
  for (const [name, t] of tensors) {
    const m = KEY.exec(name);
    if (!m) throw new InvalidArgument(`${file}: unexpected tensor \`${name}\` (want \`${PREFIX}h.{i}.…\` names)`);
    const layer = m[2] === undefined ? undefined : Number(m[2]);
    if (layer !== undefined && (layer >= config.nLayer || String(layer) !== m[2])) {
      throw new InvalidArgument(`${file}: tensor \`${name}\`: layer index ${m[2]} is out of range ${nLayerNote(config)}`);
    }
    if (byName.has(m[1])) throw new InvalidArgument(`${file}: tensor \`${m[1]}\` appears both with and without \`transformer.\``);
    byName.set(m[1], { name, t, layer, rest: m[3] });
  }
  const expect = (key: string, want: number[], why = ''): HostTensor => {
    const e = byName.get(key);
    if (!e) throw new InvalidArgument(`${file}: missing tensor \`${PREFIX}${key}\``);
    if (!sameShape(e.t.shape, want)) {
      throw new InvalidArgument(`${file}: tensor \`${e.name}\` has shape [${e.t.shape}], expected [${want}]${why}`);
    }
    return e.t;
  };
  return { file, byName, expect };
}

function lastLayersFrom(f: Fields, tensors: AdapterTensors, config: GptConfig, baseModel: string): Adapter {
  const n = config.nLayer;
  const numLayers = f.get<number>('num_layers', 0, (v) => isPosInt(v) && v <= n, `an integer in [1, ${n}] (the base model's n_layer)`);
  const shapes = hfTensorShapes(config);
  const first = n - numLayers;
  const wanted = [...shapes.keys()].filter((k) => k.startsWith('ln_f.') || Number(/^h\.(\d+)\./.exec(k)?.[1] ?? -1) >= first);
  for (const [key, e] of tensors.byName) {
    if (!wanted.includes(key)) {
      const note = `(num_layers=${numLayers} replaces blocks ${first}..${n - 1} and ln_f)`;
      throw new InvalidArgument(`${tensors.file}: unexpected tensor \`${e.name}\` ${note}`);
    }
  }
  for (const key of wanted) tensors.expect(key, shapes.get(key)!);
  // Layer norms and projections alike are a weight and a bias: upload both under the module's name.
  const up = (p: string) => {
    const [w, b] = [tensors.byName.get(`${p}.weight`)!.t, tensors.byName.get(`${p}.bias`)!.t];
    return { weight: tf.tensor(w.data, w.shape, 'float32'), bias: tf.tensor1d(b.data, 'float32') };
  };
  const blocks = new Map<number, BlockWeights>();
  for (let i = first; i < n; i++) {
    const block = Object.entries(BLOCK_MODULES).map(([field, hf]) => [field, up(`h.${i}.${hf}`)]);
    blocks.set(i, Object.fromEntries(block) as BlockWeights);
  }
  return { kind: 'last_layers', numLayers, blocks, lnF: up('ln_f') as LayerNormWeights, baseModel };
}

function loraFrom(f: Fields, tensors: AdapterTensors, config: GptConfig, baseModel: string): Adapter {
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
  const selected = selectModules(f.raw, config, f.file);

  const spec = JSON.stringify(f.raw.target_modules ?? null);
  for (const e of tensors.byName.values()) {
    const m = e.rest === undefined ? null : LORA_PARAM.exec(e.rest);
    if (!m) {
      throw new InvalidArgument(
        `${tensors.file}: unexpected tensor \`${e.name}\` ` +
          '(a LoRA adapter holds only lora_A.weight / lora_B.weight of attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj)',
      );
    }
    if (!selected.has(`${e.layer}.${m[1]}`)) {
      const which = `which \`target_modules\` ${spec} in ${ADAPTER_CONFIG_FILE} does not select`;
      throw new InvalidArgument(`${tensors.file}: tensor \`${e.name}\` adapts \`h.${e.layer}.${m[1]}\`, ${which}`);
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
    const [din, dout] = targetDims(config, target);
    const why = ` for n_embd=${config.nEmbd}, r=${r}`;
    const a = tensors.expect(`h.${key}.lora_A.weight`, [r, din], why);
    host.push({ key, target, a, b: tensors.expect(`h.${key}.lora_B.weight`, [dout, r], why) });
  }
  // Validated: only now upload, as our a = A^T [in, r] and b = B^T [r, out].
  const modules = new Map<string, LoraModule>();
  for (const { key, a, b } of host) {
    const [din, dout] = [a.shape[1], b.shape[0]];
    modules.set(key, { a: tf.tensor2d(transpose2d(a.data, r, din), [din, r]), b: tf.tensor2d(transpose2d(b.data, dout, r), [r, dout]) });
  }
  const targets = LORA_TARGETS.filter((t) => host.some((p) => p.target === t));
  const scale = loraScale(r, loraAlpha, useRslora);
  const loraConfig: LoraAdapterConfig = { r, loraAlpha, loraDropout, targetModules: targets, useRslora };
  return { kind: 'lora', config: loraConfig, lora: { r, alpha: loraAlpha, scale, targets, modules }, baseModel };
}

/**
 * The modules (`${layer}.${target}`) a LoRA config selects, by PEFT's rules (see the
 * file comment), over GPT2LMHeadModel's module names.
 */
function selectModules(raw: Json, config: GptConfig, file: string): Set<string> {
  const names: { name: string; key: string; layer: number }[] = [];
  for (let i = 0; i < config.nLayer; i++) {
    for (const t of LORA_TARGETS) names.push({ name: `transformer.h.${i}.${t}`, key: `${i}.${t}`, layer: i });
  }
  const matcher = (field: string, spec: unknown): ((name: string) => boolean) => {
    if (typeof spec === 'string') {
      if (spec === 'all-linear') return () => true; // every Conv1D but the LM head
      try {
        const re = new RegExp(`^(?:${spec})$`);
        return (name) => re.test(name);
      } catch (err) {
        throw new InvalidArgument(`${file}: \`${field}\` is not a valid regular expression: ${JSON.stringify(spec)}`, { cause: err });
      }
    }
    if (!Array.isArray(spec) || !spec.every((s) => typeof s === 'string')) {
      throw new InvalidArgument(`${file}: \`${field}\` must be a list of module names or a regex string, got ${JSON.stringify(spec)}`);
    }
    return (name) => spec.some((s: string) => name === s || name.endsWith(`.${s}`));
  };
  const spec = raw.target_modules ?? ['c_attn']; // PEFT's default for gpt2
  const target = matcher('target_modules', spec);
  // Each list entry (or the regex) must name a module LoRA can adapt here; PEFT too
  // refuses target modules that match nothing.
  for (const e of typeof spec === 'string' ? [spec] : (spec as string[])) {
    const hits = typeof spec === 'string' ? target : matcher('target_modules', [e]);
    if (!names.some((n) => hits(n.name))) {
      const known = '(GPT-2 LoRA targets: c_attn, c_proj, attn.c_proj, c_fc, mlp.c_proj)';
      throw new InvalidArgument(`${file}: unknown target module ${JSON.stringify(e)} in \`target_modules\` ${known}`);
    }
  }
  const exclude = raw.exclude_modules == null ? () => false : matcher('exclude_modules', raw.exclude_modules);
  let layers: Set<number> | null = null;
  const ltt = raw.layers_to_transform;
  if (ltt != null && typeof spec !== 'string') {
    const list = typeof ltt === 'number' ? [ltt] : ltt;
    if (!Array.isArray(list) || !list.every((l) => Number.isInteger(l) && l >= 0)) {
      throw new InvalidArgument(`${file}: \`layers_to_transform\` must be a layer index or a list of them, got ${JSON.stringify(ltt)}`);
    }
    const out = list.find((l) => l >= config.nLayer);
    if (out !== undefined) throw new InvalidArgument(`${file}: \`layers_to_transform\`: layer index ${out} is out of range ${nLayerNote(config)}`);
    const pattern = raw.layers_pattern;
    if (!(pattern == null || pattern === 'h' || (Array.isArray(pattern) && pattern.includes('h')))) {
      throw new InvalidArgument(`${file}: \`layers_pattern\` must be "h" for GPT-2, got ${JSON.stringify(pattern)}`);
    }
    layers = new Set(list as number[]);
  }
  const selected = new Set(names.filter((n) => target(n.name) && !exclude(n.name) && (!layers || layers.has(n.layer))).map((n) => n.key));
  if (selected.size === 0) throw new InvalidArgument(`${file}: \`target_modules\` ${JSON.stringify(spec)} selects no module`);
  return selected;
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
