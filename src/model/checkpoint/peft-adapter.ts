import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { InvalidArgument, NotFound } from '../../common/errors.js';
import type { Adapter, LoraAdapterConfig } from '../adapter.js';
import { type GptConfig, hfTensorShapes } from '../gpt-config.js';
import { blockNamed, type BlockWeights, type LayerNormWeights } from '../gpt-weights.js';
import { LORA_TARGETS, loraScale, type LoraModule, type LoraTarget } from '../lora.js';
import { readSafetensors, writeFileAtomic, writeSafetensors, type HostTensor } from './safetensors.js';

/**
 * Adapters on disk in PEFT's layout: `adapter_config.json` + `adapter_model.safetensors`
 * (peft/utils/constants.py: CONFIG_NAME, SAFETENSORS_WEIGHTS_NAME).
 *
 * LoRA keys, checked against huggingface/peft:
 * - utils/save_and_load.py `get_peft_model_state_dict` keeps the `lora_` entries of
 *   `PeftModel.state_dict()` and removes the adapter name ("REMOVE ADAPTER NAME":
 *   `...c_attn.lora_A.default.weight` -> `...c_attn.lora_A.weight`). PeftModel holds
 *   LoraModel as `base_model`, which holds GPT2LMHeadModel as `model`, so a key reads
 *   `base_model.model.transformer.h.{i}.attn.c_attn.lora_A.weight`.
 * - tuners/lora/layer.py: for a transformers `Conv1D` base layer,
 *   `in_features, out_features = base_layer.weight.shape` (GPT-2 stores [in, out]);
 *   `lora_A = nn.Linear(in_features, r)` so `lora_A.weight` is [r, in], and
 *   `lora_B = nn.Linear(r, out_features)` so `lora_B.weight` is [out, r]. fan_in_fan_out
 *   only enters `get_delta_weight`: `transpose(B @ A, fan_in_fan_out) * scaling`, i.e.
 *   the [in, out] Conv1D weight gains scaling * A^T B^T; scaling is lora_alpha / r, or
 *   lora_alpha / sqrt(r) with use_rslora. tuners/lora/model.py forces fan_in_fan_out
 *   to True for Conv1D ("fan_in_fan_out is set to False but the target module is
 *   `Conv1D`. Setting fan_in_fan_out to True."), so its value in a config is moot here.
 * - tuners_utils.py `check_target_module_exists`: a list entry selects a module whose
 *   name equals it or ends with `.entry`; a string is a regex the name must fully match;
 *   `layers_to_transform` then restricts list entries to those layers. Module names are
 *   GPT2LMHeadModel's: `transformer.h.{i}.attn.c_attn`, so `c_proj` selects both the
 *   attention and the MLP output projections.
 *
 * `last_layers` adapters (gentune's own, peft_type "LAST_LAYERS"; PEFT cannot load
 * them): adapter_config.json `{peft_type, task_type: "CAUSAL_LM", num_layers,
 * base_model_name_or_path, inference_mode}` and the replacement tensors of the top
 * `num_layers` blocks and of ln_f under `base_model.model.transformer.` + their Hugging
 * Face names (`h.11.attn.c_attn.weight`, `ln_f.bias`, ...): stripping the prefix gives
 * names that overwrite the base checkpoint's tensors directly.
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

type Json = Record<string, unknown>;
const isJson = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const isPosInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;
const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/** [in, out] of an adapted projection. */
function targetDims(config: GptConfig, target: LoraTarget): [number, number] {
  const d = config.nEmbd;
  return ({ 'attn.c_attn': [d, 3 * d], 'attn.c_proj': [d, d], 'mlp.c_fc': [d, 4 * d], 'mlp.c_proj': [4 * d, d] } as const)[target] as [number, number];
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
  const tensors = new Map<string, HostTensor>();
  let config: Json;
  if (adapter.kind === 'lora') {
    const { config: c, lora } = adapter;
    if (c.r !== lora.r || c.loraAlpha !== lora.alpha || Math.abs(loraScale(c.r, c.loraAlpha, c.useRslora) - lora.scale) > 1e-6 * lora.scale) {
      throw new InvalidArgument(`adapter: r=${lora.r}, alpha=${lora.alpha}, scale=${lora.scale} disagree with its config (r=${c.r}, lora_alpha=${c.loraAlpha}, use_rslora=${c.useRslora})`);
    }
    const layersOf = new Map<LoraTarget, number[]>();
    for (const [key, m] of lora.modules) {
      const [, layer, target] = /^(\d+)\.(.+)$/.exec(key) ?? [];
      if (layer === undefined || !(LORA_TARGETS as readonly string[]).includes(target)) throw new InvalidArgument(`adapter: malformed module key \`${key}\``);
      const [din, dout] = base ? targetDims(base, target as LoraTarget) : [m.a.shape[0], m.b.shape[1]];
      if (!sameShape(m.a.shape, [din, lora.r]) || !sameShape(m.b.shape, [lora.r, dout])) {
        throw new InvalidArgument(`adapter: module \`${key}\` has a [${m.a.shape}] and b [${m.b.shape}], expected [${din},${lora.r}] and [${lora.r},${dout}]`);
      }
      layersOf.set(target as LoraTarget, [...(layersOf.get(target as LoraTarget) ?? []), Number(layer)]);
      const name = `${PREFIX}h.${layer}.${target}`;
      tensors.set(`${name}.lora_A.weight`, { shape: [lora.r, din], data: transpose2d(await m.a.data(), din, lora.r) });
      tensors.set(`${name}.lora_B.weight`, { shape: [dout, lora.r], data: transpose2d(await m.b.data(), lora.r, dout) });
    }
    const lists = [...layersOf.values()].map((l) => l.sort((x, y) => x - y).join(','));
    if (lists.length === 0 || lists.some((l) => l !== lists[0])) {
      throw new InvalidArgument(`adapter: every target must adapt the same layers (got ${[...layersOf].map(([t, l]) => `${t}: [${l}]`).join('; ') || 'no modules'})`);
    }
    const layers = [...layersOf.values()][0];
    const all = base ? layers.length === base.nLayer : layers.every((l, i) => l === i);
    config = {
      alpha_pattern: {}, base_model_name_or_path: adapter.baseModel, bias: 'none', fan_in_fan_out: true, inference_mode: true,
      init_lora_weights: true, layers_pattern: all ? null : 'h', layers_to_transform: all ? null : layers, lora_alpha: c.loraAlpha,
      lora_dropout: c.loraDropout, modules_to_save: null, peft_type: 'LORA', r: c.r, rank_pattern: {}, revision: null,
      target_modules: peftTargetNames([...layersOf.keys()]), task_type: 'CAUSAL_LM', use_dora: false, use_rslora: c.useRslora,
    };
  } else {
    const layers = [...adapter.blocks.keys()].sort((a, b) => a - b);
    if (layers.length !== adapter.numLayers || layers.some((l, i) => l !== layers[0] + i) || (base && layers.at(-1) !== base.nLayer - 1)) {
      throw new InvalidArgument(`adapter: num_layers=${adapter.numLayers} but it holds blocks [${layers}], which are not the top ${adapter.numLayers}`);
    }
    for (const [i, b] of adapter.blocks) {
      for (const [name, t] of Object.entries(blockNamed(b))) tensors.set(`${PREFIX}h.${i}.${name}`, { shape: t.shape, data: (await t.data()) as Float32Array });
    }
    for (const [name, t] of Object.entries({ weight: adapter.lnF.weight, bias: adapter.lnF.bias })) {
      tensors.set(`${PREFIX}ln_f.${name}`, { shape: t.shape, data: (await t.data()) as Float32Array });
    }
    config = { base_model_name_or_path: adapter.baseModel, inference_mode: true, num_layers: adapter.numLayers, peft_type: LAST_LAYERS_PEFT_TYPE, task_type: 'CAUSAL_LM' };
  }
  await writeFolderAtomic(dir, async (tmp) => {
    await writeSafetensors(join(tmp, ADAPTER_WEIGHTS_FILE), tensors, { metadata: { format: 'pt' } });
    await writeFileAtomic(join(tmp, ADAPTER_CONFIG_FILE), [JSON.stringify(config, null, 2) + '\n']);
  });
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
      await rename(tmp, target);
      await rm(old, { recursive: true, force: true });
    }
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
  try {
    const d = await open(parent, 'r');
    await d.sync().finally(() => d.close());
  } catch {
    // best effort: some platforms cannot fsync a directory
  }
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
 *   does not select.
 */
export async function loadAdapter(dir: string, config: GptConfig): Promise<Adapter> {
  const configPath = join(dir, ADAPTER_CONFIG_FILE);
  const raw = await readJson(configPath);
  const bad = (key: string, want: string): never => {
    throw new InvalidArgument(`${configPath}: \`${key}\` must be ${want}, got ${JSON.stringify(raw[key])}`);
  };
  const baseModel = raw.base_model_name_or_path ?? '';
  if (typeof baseModel !== 'string') bad('base_model_name_or_path', 'a string');
  if (raw.task_type != null && raw.task_type !== 'CAUSAL_LM') bad('task_type', '"CAUSAL_LM"');
  if (raw.peft_type !== 'LORA' && raw.peft_type !== LAST_LAYERS_PEFT_TYPE) {
    throw new InvalidArgument(`${configPath}: unknown \`peft_type\` ${JSON.stringify(raw.peft_type)} (supported: LORA, ${LAST_LAYERS_PEFT_TYPE})`);
  }
  const weightsPath = join(dir, ADAPTER_WEIGHTS_FILE);
  let tensors: Map<string, HostTensor>;
  try {
    ({ tensors } = await readSafetensors(weightsPath));
  } catch (err) {
    const pickle = await stat(join(dir, 'adapter_model.bin')).then(() => true, () => false);
    if (err instanceof NotFound && pickle) {
      throw new InvalidArgument(`${dir}: holds adapter_model.bin (a pickle); only ${ADAPTER_WEIGHTS_FILE} is supported`, { cause: err });
    }
    throw err;
  }
  // Bare names (`h.0.attn.c_attn.lora_A.weight`), with or without `transformer.` in the file.
  const bare = new Map<string, { name: string; t: HostTensor; layer?: number; rest?: string }>();
  for (const [name, t] of tensors) {
    const m = KEY.exec(name);
    if (!m) throw new InvalidArgument(`${weightsPath}: unexpected tensor \`${name}\` (want \`${PREFIX}h.{i}.…\` names)`);
    const layer = m[2] === undefined ? undefined : Number(m[2]);
    if (layer !== undefined && (layer >= config.nLayer || String(layer) !== m[2])) {
      throw new InvalidArgument(`${weightsPath}: tensor \`${name}\`: layer index ${m[2]} is out of range (the base model has n_layer=${config.nLayer})`);
    }
    if (bare.has(m[1])) throw new InvalidArgument(`${weightsPath}: tensor \`${m[1]}\` appears both with and without \`transformer.\``);
    bare.set(m[1], { name, t, layer, rest: m[3] });
  }
  const checkShape = (key: string, want: number[], why = ''): HostTensor => {
    const e = bare.get(key);
    if (!e) throw new InvalidArgument(`${weightsPath}: missing tensor \`${PREFIX}${key}\``);
    if (!sameShape(e.t.shape, want)) throw new InvalidArgument(`${weightsPath}: tensor \`${e.name}\` has shape [${e.t.shape}], expected [${want}]${why}`);
    return e.t;
  };

  if (raw.peft_type === LAST_LAYERS_PEFT_TYPE) {
    const n = raw.num_layers;
    if (!isPosInt(n) || n > config.nLayer) bad('num_layers', `an integer in [1, ${config.nLayer}] (the base model's n_layer)`);
    const numLayers = n as number;
    const shapes = hfTensorShapes(config);
    const first = config.nLayer - numLayers;
    const wanted = [...shapes.keys()].filter((k) => k.startsWith('ln_f.') || Number(/^h\.(\d+)\./.exec(k)?.[1] ?? -1) >= first);
    for (const [key, e] of bare) {
      if (!shapes.has(key) || !wanted.includes(key)) throw new InvalidArgument(`${weightsPath}: unexpected tensor \`${e.name}\` (num_layers=${numLayers} replaces blocks ${first}..${config.nLayer - 1} and ln_f)`);
    }
    for (const key of wanted) checkShape(key, shapes.get(key)!);
    const up = (key: string) => {
      const h = bare.get(key)!.t;
      return tf.tensor(h.data, h.shape, 'float32');
    };
    const ln = (p: string): LayerNormWeights => ({ weight: up(`${p}.weight`) as tf.Tensor1D, bias: up(`${p}.bias`) as tf.Tensor1D });
    const lin = (p: string) => ({ weight: up(`${p}.weight`) as tf.Tensor2D, bias: up(`${p}.bias`) as tf.Tensor1D });
    const blocks = new Map<number, BlockWeights>();
    for (let i = first; i < config.nLayer; i++) {
      const p = `h.${i}.`;
      blocks.set(i, { ln_1: ln(`${p}ln_1`), c_attn: lin(`${p}attn.c_attn`), attn_c_proj: lin(`${p}attn.c_proj`), ln_2: ln(`${p}ln_2`), c_fc: lin(`${p}mlp.c_fc`), mlp_c_proj: lin(`${p}mlp.c_proj`) });
    }
    return { kind: 'last_layers', numLayers, blocks, lnF: ln('ln_f'), baseModel: baseModel as string };
  }

  for (const [key, what] of Object.entries(UNSUPPORTED)) {
    const v = raw[key];
    if (!(v == null || v === false || (Array.isArray(v) && v.length === 0) || (isJson(v) && Object.keys(v).length === 0))) {
      throw new InvalidArgument(`${configPath}: \`${key}\` (${what}) is not supported, got ${JSON.stringify(v)}`);
    }
  }
  if ((raw.bias ?? 'none') !== 'none') bad('bias', '"none"');
  const r = raw.r ?? 8; // PEFT's LoraConfig defaults
  if (!isPosInt(r)) bad('r', 'a positive integer');
  const alpha = raw.lora_alpha ?? 8;
  if (typeof alpha !== 'number' || !Number.isFinite(alpha)) bad('lora_alpha', 'a number');
  const dropout = raw.lora_dropout ?? 0;
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) bad('lora_dropout', 'a number in [0, 1)');
  const useRslora = raw.use_rslora ?? false;
  if (typeof useRslora !== 'boolean') bad('use_rslora', 'true or false');
  if (raw.fan_in_fan_out != null && typeof raw.fan_in_fan_out !== 'boolean') bad('fan_in_fan_out', 'true or false');
  const selected = selectModules(raw, config, configPath);

  const pairs: { key: string; target: LoraTarget; a: HostTensor; b: HostTensor }[] = [];
  for (const e of bare.values()) {
    const m = e.rest === undefined ? null : LORA_PARAM.exec(e.rest);
    if (!m) throw new InvalidArgument(`${weightsPath}: unexpected tensor \`${e.name}\` (a LoRA adapter holds only \`…lora_A.weight\` / \`…lora_B.weight\` of attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj)`);
    if (!selected.has(`${e.layer}.${m[1]}`)) {
      throw new InvalidArgument(`${weightsPath}: tensor \`${e.name}\` adapts \`h.${e.layer}.${m[1]}\`, which \`target_modules\` ${JSON.stringify(raw.target_modules ?? null)} in ${ADAPTER_CONFIG_FILE} does not select`);
    }
    if (e.t.shape.length === 2 && e.t.shape[m[2] === 'A' ? 0 : 1] !== r) {
      throw new InvalidArgument(`${weightsPath}: tensor \`${e.name}\` has shape [${e.t.shape}]: rank ${e.t.shape[m[2] === 'A' ? 0 : 1]}, but ${ADAPTER_CONFIG_FILE} says r=${r}`);
    }
  }
  for (const key of selected) {
    const [layer, target] = [Number(key.slice(0, key.indexOf('.'))), key.slice(key.indexOf('.') + 1) as LoraTarget];
    const [din, dout] = targetDims(config, target);
    const why = ` for n_embd=${config.nEmbd}, r=${r}`;
    const a = checkShape(`h.${layer}.${target}.lora_A.weight`, [r as number, din], why);
    const b = checkShape(`h.${layer}.${target}.lora_B.weight`, [dout, r as number], why);
    pairs.push({ key, target, a, b });
  }
  const modules = new Map<string, LoraModule>();
  for (const { key, a, b } of pairs) {
    const [rr, din] = a.shape;
    const dout = b.shape[0];
    modules.set(key, { a: tf.tensor2d(transpose2d(a.data, rr, din), [din, rr]), b: tf.tensor2d(transpose2d(b.data, dout, rr), [rr, dout]) });
  }
  const targets = LORA_TARGETS.filter((t) => pairs.some((p) => p.target === t));
  const loraConfig: LoraAdapterConfig = { r: r as number, loraAlpha: alpha as number, loraDropout: dropout as number, targetModules: targets, useRslora: useRslora as boolean };
  const scale = loraScale(r as number, alpha as number, useRslora as boolean);
  return { kind: 'lora', config: loraConfig, lora: { r: r as number, alpha: alpha as number, scale, targets, modules }, baseModel: baseModel as string };
}

/**
 * The modules (`${layer}.${target}`) a LoRA config selects, by PEFT's rules (see the
 * file comment), over GPT2LMHeadModel's module names.
 */
function selectModules(raw: Json, config: GptConfig, file: string): Set<string> {
  const names: { name: string; key: string; layer: number }[] = [];
  for (let i = 0; i < config.nLayer; i++) for (const t of LORA_TARGETS) names.push({ name: `transformer.h.${i}.${t}`, key: `${i}.${t}`, layer: i });
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
      throw new InvalidArgument(`${file}: unknown target module ${JSON.stringify(e)} in \`target_modules\` (GPT-2 LoRA targets: c_attn, c_proj, attn.c_proj, c_fc, mlp.c_proj)`);
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
    if (out !== undefined) throw new InvalidArgument(`${file}: \`layers_to_transform\`: layer index ${out} is out of range (the base model has n_layer=${config.nLayer})`);
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

async function readJson(path: string): Promise<Json> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFound(`${path}: no such file`, { cause: err });
    throw err;
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
