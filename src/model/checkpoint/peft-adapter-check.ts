/**
 * Checks an adapter folder in PEFT's layout (see peft-adapter.ts for the
 * format) against a base model without reading or uploading any weight:
 * adapter_config.json and the safetensors header (names, dtypes, shapes,
 * layout) are all it takes to know whether the folder loads. The result is a
 * plan that {@link uploadAdapter} turns into tensors once the data is read, so
 * a load runs exactly the checks a listing runs (a store lists an adapter as
 * loadable only when it is).
 */
import { closeSync, constants, lstatSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { InvalidArgument, NotFound } from '../../common/errors.js';
import type { Adapter, LoraAdapterConfig } from '../adapter.js';
import { type GptConfig, hfTensorShapes } from '../gpt-config.js';
import type { DecoderBlockWeights, HostTensors } from '../gpt-weights.js';
import { type FamilyModules, familyModules } from '../family-modules.js';
import { loraScale, type LoraModule, type LoraTarget } from '../lora.js';
import { selectModules } from './peft-target-modules.js';
import { type HostTensor, readSafetensorsHeaderSync } from './safetensors.js';

/** The config file of an adapter folder. */
export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
/** The tensor file of an adapter folder. */
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
/** peft_type of gentune's `last_layers` adapters. */
export const LAST_LAYERS_PEFT_TYPE = 'LAST_LAYERS';
/** What PEFT puts before the LM-head model's module paths. */
export const PEFT_PREFIX = 'base_model.model.';

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
/** True when two shapes are equal. */
export const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/** Row-major [rows, cols] -> [cols, rows]. */
export function transpose2d(data: ArrayLike<number>, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = data[i * cols + j];
  return out;
}

/** Options of {@link checkAdapter}. */
export interface CheckAdapterOptions {
  /** Refuse symbolic links (the stores: nothing under the data directory is read through one). */
  noFollow?: boolean;
}

/** A checked adapter folder: which tensor of the file goes where, and the settings. */
export type AdapterPlan = {
  /** The weights file, its size in bytes and modification time (ms since the epoch). */
  file: string;
  sizeBytes: number;
  mtimeMs: number;
  baseModel: string;
  /** Every tensor of the file the adapter uses. */
  names: Set<string>;
} & (
  | {
      kind: 'lora';
      config: LoraAdapterConfig;
      scale: number;
      /** Module key (`${layer}.${target}`), the names of its A [r, in] and B [out, r] tensors, and in, out. */
      modules: { key: string; a: string; b: string; din: number; dout: number }[];
    }
  | {
      kind: 'last_layers';
      numLayers: number;
      /** Checkpoint name (`transformer.h.11.attn.c_attn.weight`) -> the file's tensor name. */
      tensors: Map<string, string>;
    }
);

/**
 * Checks the adapter folder `dir` against the base model's `config` with a
 * few small blocking reads (the config and the weights' header).
 * @throws NotFound if a file is missing; InvalidArgument naming the file and
 *   the field or tensor for an unknown peft_type, an unsupported setting, an
 *   unknown target module, a missing, unexpected or misshapen tensor, a rank
 *   that differs from `r`, a layer index out of range, a tensor of a module
 *   target_modules does not select, or a target module or key the base
 *   model's family lacks (`c_attn` on a Llama-family model, `q_proj` on GPT-2).
 */
export function checkAdapter(dir: string, config: GptConfig, options: CheckAdapterOptions = {}): AdapterPlan {
  const noFollow = options.noFollow ?? false;
  const configPath = join(dir, ADAPTER_CONFIG_FILE);
  const f = fields(readJson(configPath, noFollow), configPath);
  const peftType = f.raw.peft_type;
  if (peftType !== 'LORA' && peftType !== LAST_LAYERS_PEFT_TYPE) {
    const supported = `(supported: LORA, ${LAST_LAYERS_PEFT_TYPE})`;
    throw new InvalidArgument(`${configPath}: unknown \`peft_type\` ${JSON.stringify(peftType)} ${supported}`);
  }
  const baseModel = f.get('base_model_name_or_path', '', (v) => typeof v === 'string', 'a string');
  f.get('task_type', 'CAUSAL_LM', (v) => v === 'CAUSAL_LM', '"CAUSAL_LM"');
  const family = familyModules(config);
  // Read once the config's fields are checked: a config for modules the model lacks is named as such, not by its keys.
  const tensors = () => readAdapterHeader(dir, config, family, noFollow);
  return peftType === 'LORA' ? loraPlan(f, tensors, config, family, baseModel) : lastLayersPlan(f, tensors, config, family, baseModel);
}

/**
 * Uploads a checked adapter to the backend from `data`, the file's tensors
 * (read after the check: their shapes are checked again); the caller owns the result.
 */
export function uploadAdapter(plan: AdapterPlan, data: Map<string, HostTensor>, config: GptConfig): Adapter {
  const get = (name: string, shape?: number[]): HostTensor => {
    const t = data.get(name);
    if (!t || (shape && !sameShape(t.shape, shape))) throw new InvalidArgument(`${plan.file}: tensor \`${name}\` changed while it was read`);
    return t;
  };
  if (plan.kind === 'last_layers') {
    const family = familyModules(config);
    const host: HostTensors = new Map();
    for (const [checkpointName, name] of plan.tensors) host.set(checkpointName, get(name));
    const first = config.nLayer - plan.numLayers;
    const blocks = new Map<number, DecoderBlockWeights>();
    for (let i = first; i < config.nLayer; i++) blocks.set(i, family.blockFromHost(config, host, i));
    return { kind: 'last_layers', numLayers: plan.numLayers, blocks, lnF: family.finalNormFromHost(host), baseModel: plan.baseModel };
  }
  const { r } = plan.config;
  // Checked: only now upload, as our a = A^T [in, r] and b = B^T [r, out].
  const modules = new Map<string, LoraModule>();
  for (const { key, a: aName, b: bName, din, dout } of plan.modules) {
    const a = get(aName, [r, din]);
    const b = get(bName, [dout, r]);
    modules.set(key, { a: tf.tensor2d(transpose2d(a.data, r, din), [din, r]), b: tf.tensor2d(transpose2d(b.data, dout, r), [r, dout]) });
  }
  const { loraAlpha: alpha, targetModules: targets } = plan.config;
  return { kind: 'lora', config: plan.config, lora: { r, alpha, scale: plan.scale, targets, modules }, baseModel: plan.baseModel };
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
interface AdapterHeader {
  file: string;
  sizeBytes: number;
  mtimeMs: number;
  byName: Map<string, { name: string; shape: number[]; layer?: number; rest?: string }>;
  /** The file's name of tensor `key`, or InvalidArgument if it is missing or not of shape `want`. */
  expect(key: string, want: number[], why?: string): string;
}

function readAdapterHeader(dir: string, config: GptConfig, family: FamilyModules, noFollow: boolean): AdapterHeader {
  const file = join(dir, ADAPTER_WEIGHTS_FILE);
  let tensors: Map<string, { shape: number[] }>;
  let sizeBytes: number;
  let mtimeMs: number;
  try {
    ({ tensors, sizeBytes, mtimeMs } = readSafetensorsHeaderSync(file, { noFollow }));
  } catch (err) {
    let pickle = false;
    try {
      pickle = lstatSync(join(dir, 'adapter_model.bin')).isFile();
    } catch {
      // no pickle either
    }
    if (err instanceof NotFound && pickle) {
      throw new InvalidArgument(`${dir}: holds adapter_model.bin (a pickle); only ${ADAPTER_WEIGHTS_FILE} is supported`, { cause: err });
    }
    throw err;
  }
  const byName: AdapterHeader['byName'] = new Map();
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
    byName.set(m[1], { name, shape: t.shape, layer, rest: m[3] });
  }
  const expect = (key: string, want: number[], why = ''): string => {
    const e = byName.get(key);
    if (!e) throw new InvalidArgument(`${file}: missing tensor \`${prefix}${key}\``);
    if (!sameShape(e.shape, want)) {
      throw new InvalidArgument(`${file}: tensor \`${e.name}\` has shape [${e.shape}], expected [${want}]${why}`);
    }
    return e.name;
  };
  return { file, sizeBytes, mtimeMs, byName, expect };
}

function lastLayersPlan(f: Fields, readHeader: () => AdapterHeader, config: GptConfig, family: FamilyModules, baseModel: string): AdapterPlan {
  const n = config.nLayer;
  const numLayers = f.get<number>('num_layers', 0, (v) => isPosInt(v) && v <= n, `an integer in [1, ${n}] (the base model's n_layer)`);
  const header = readHeader();
  const first = n - numLayers;
  // The checkpoint's tensors of the top blocks and the final norm, by name under the model root.
  const shapes = new Map<string, number[]>();
  const blockOf = new RegExp(`^${family.layers}\\.(\\d+)\\.`);
  for (const [name, shape] of hfTensorShapes(config)) {
    const bare = name.slice(family.checkpointRoot.length);
    if (!name.startsWith(family.checkpointRoot)) continue;
    if (bare.startsWith(`${family.finalNorm}.`) || Number(blockOf.exec(bare)?.[1] ?? -1) >= first) shapes.set(bare, shape);
  }
  for (const [key, e] of header.byName) {
    if (!shapes.has(key)) {
      const note = `(num_layers=${numLayers} replaces blocks ${first}..${n - 1} and ${family.finalNorm})`;
      throw new InvalidArgument(`${header.file}: unexpected tensor \`${e.name}\` ${note}`);
    }
  }
  // Uploaded through the loader of the family's checkpoints (which transposes nn.Linear weights).
  const tensors = new Map<string, string>();
  for (const [key, shape] of shapes) tensors.set(`${family.checkpointRoot}${key}`, header.expect(key, shape));
  return { kind: 'last_layers', file: header.file, sizeBytes: header.sizeBytes, mtimeMs: header.mtimeMs, baseModel, numLayers, tensors, names: new Set(tensors.values()) };
}

function loraPlan(f: Fields, readHeader: () => AdapterHeader, config: GptConfig, family: FamilyModules, baseModel: string): AdapterPlan {
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
  const header = readHeader();

  const spec = JSON.stringify(f.raw.target_modules ?? null);
  const loraParam = loraParamPattern(family);
  for (const e of header.byName.values()) {
    const m = e.rest === undefined ? null : loraParam.exec(e.rest);
    if (!m) {
      const holds = `a LoRA adapter of a ${family.label} model holds only lora_A.weight / lora_B.weight of ${family.targets.join(', ')}`;
      throw new InvalidArgument(`${header.file}: unexpected tensor \`${e.name}\` (${holds})`);
    }
    if (!selected.has(`${e.layer}.${m[1]}`)) {
      const which = `which \`target_modules\` ${spec} in ${ADAPTER_CONFIG_FILE} does not select`;
      throw new InvalidArgument(`${header.file}: tensor \`${e.name}\` adapts \`${family.layers}.${e.layer}.${m[1]}\`, ${which}`);
    }
    const rank = e.shape[m[2] === 'A' ? 0 : 1];
    if (e.shape.length === 2 && rank !== r) {
      const says = `but ${ADAPTER_CONFIG_FILE} says r=${r}`;
      throw new InvalidArgument(`${header.file}: tensor \`${e.name}\` has shape [${e.shape}]: rank ${rank}, ${says}`);
    }
  }
  const modules: { key: string; target: LoraTarget; a: string; b: string; din: number; dout: number }[] = [];
  for (const key of selected) {
    const target = key.slice(key.indexOf('.') + 1) as LoraTarget;
    const [din, dout] = family.dims(config, target);
    const why = ` for ${target} of [${din}, ${dout}] (in, out), r=${r}`;
    const a = header.expect(`${family.layers}.${key}.lora_A.weight`, [r, din], why);
    modules.push({ key, target, a, b: header.expect(`${family.layers}.${key}.lora_B.weight`, [dout, r], why), din, dout });
  }
  const targets = family.targets.filter((t) => modules.some((p) => p.target === t));
  const loraConfig: LoraAdapterConfig = { r, loraAlpha, loraDropout, targetModules: targets, useRslora };
  const names = new Set(modules.flatMap((m) => [m.a, m.b]));
  const plan = modules.map(({ key, a, b, din, dout }) => ({ key, a, b, din, dout }));
  return { kind: 'lora', file: header.file, sizeBytes: header.sizeBytes, mtimeMs: header.mtimeMs, baseModel, config: loraConfig, scale: loraScale(r, loraAlpha, useRslora), modules: plan, names };
}

function readJson(path: string, noFollow: boolean): Json {
  let text: string;
  try {
    const fd = openSync(path, constants.O_RDONLY | (noFollow ? constants.O_NOFOLLOW : 0));
    try {
      text = readFileSync(fd, 'utf8');
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new NotFound(`${path}: no such file`, { cause: err });
    if (code === 'ELOOP') throw new InvalidArgument(`${path}: is a symbolic link, which is not followed`, { cause: err });
    if (code === 'EISDIR') throw new InvalidArgument(`${path}: is a folder, not a file`, { cause: err });
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
