import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgument, NotFound } from '../../common/errors.js';
import { Rng } from '../../common/rng.js';
import { configFromHf, configToHf, hfTensorShapes } from '../gpt-config.js';
import type { GptConfig } from '../gpt-config.js';
import { readSafetensors, writeFileAtomic, writeSafetensors } from './safetensors.js';
import type { HostTensor, SafetensorsDtype } from './safetensors.js';

/**
 * A GPT-2 model folder in Hugging Face's layout: `config.json` plus
 * `model.safetensors`, tensor names as in `GPT2Model` (`wte.weight`,
 * `h.0.attn.c_attn.weight` [in, out], ...), optionally under `transformer.`
 * as `GPT2LMHeadModel.save_pretrained` writes them.
 */

/** The tensor file inside a model folder. */
export const MODEL_FILE = 'model.safetensors';
/** The config file inside a model folder. */
export const CONFIG_FILE = 'config.json';

/** A GPT-2 checkpoint in host memory: tensors under bare HF names (no `transformer.`). */
export interface Gpt2Checkpoint {
  config: GptConfig;
  tensors: Map<string, HostTensor>;
}

/** Options for {@link writeGpt2Folder}. */
export interface WriteGpt2FolderOptions {
  /** Storage dtype of model.safetensors; default F32. */
  dtype?: SafetensorsDtype;
  /** Extra or overriding keys for config.json (e.g. `eos_token_id`). */
  extraConfig?: Record<string, unknown>;
}

const PREFIX = 'transformer.';
// lm_head.weight is tied to wte; attn.bias / attn.masked_bias are the causal
// mask buffers older transformers versions saved. None carries a weight.
const IGNORED = /^(lm_head\.weight|h\.\d+\.attn\.(bias|masked_bias))$/;

const bareName = (name: string): string => (name.startsWith(PREFIX) ? name.slice(PREFIX.length) : name);

/**
 * Checks that `tensors` is exactly a GPT-2 checkpoint for `config`: every
 * name of {@link hfTensorShapes} with its shape and data length, nothing else
 * (besides the ignored tied/buffer names). Accepts names with or without the
 * `transformer.` prefix; returns the tensors under bare names, in
 * `hfTensorShapes` order. `source` names the file in errors.
 * @throws InvalidArgument naming the file and the tensor.
 */
export function normalizeGpt2Tensors(
  config: GptConfig,
  tensors: Map<string, HostTensor>,
  source: string,
): Map<string, HostTensor> {
  const bare = new Map<string, HostTensor>();
  for (const [name, t] of tensors) {
    const key = bareName(name);
    if (IGNORED.test(key)) continue;
    if (bare.has(key)) throw new InvalidArgument(`${source}: tensor \`${key}\` appears both with and without \`${PREFIX}\``);
    bare.set(key, t);
  }
  const expected = hfTensorShapes(config);
  const out = new Map<string, HostTensor>();
  for (const [name, shape] of expected) {
    const t = bare.get(name);
    if (!t) throw new InvalidArgument(`${source}: missing tensor \`${name}\``);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new InvalidArgument(`${source}: tensor \`${name}\` has shape [${t.shape}], expected [${shape}]`);
    }
    const count = shape.reduce((a, b) => a * b, 1);
    if (!(t.data instanceof Float32Array) || t.data.length !== count) {
      throw new InvalidArgument(`${source}: tensor \`${name}\` has ${t.data?.length} values, expected ${count}`);
    }
    out.set(name, t);
  }
  for (const name of bare.keys()) {
    if (!expected.has(name)) {
      throw new InvalidArgument(
        `${source}: unexpected tensor \`${name}\` (config.json describes n_layer=${config.nLayer}, n_embd=${config.nEmbd})`,
      );
    }
  }
  return out;
}

/**
 * Reads a Hugging Face GPT-2 folder (`config.json` + `model.safetensors`).
 * F16/BF16 checkpoints are widened to float32.
 * @throws NotFound if a file is missing; InvalidArgument (naming the file and
 *   the tensor) if config.json is malformed or a tensor is missing, misshapen
 *   or unexpected.
 */
export async function readGpt2Folder(dir: string): Promise<Gpt2Checkpoint> {
  const config = await readGpt2Config(dir);
  const modelPath = join(dir, MODEL_FILE);
  // Skipped names are not decoded: newer exports may store the mask buffers as BOOL.
  const { tensors } = await readSafetensors(modelPath, { include: (name) => !IGNORED.test(bareName(name)) });
  return { config, tensors: normalizeGpt2Tensors(config, tensors, modelPath) };
}

/** Reads and checks a GPT-2 folder's `config.json` alone (the weights stay on disk). */
export async function readGpt2Config(dir: string): Promise<GptConfig> {
  const configPath = join(dir, CONFIG_FILE);
  let text: string;
  try {
    text = await readFile(configPath, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFound(`${configPath}: no such file`, { cause: err });
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new InvalidArgument(`${configPath}: not valid JSON (${(err as Error).message})`, { cause: err });
  }
  return configFromHf(json, configPath);
}

/**
 * Writes a Hugging Face GPT-2 folder (creating `dir` if needed): config.json
 * and model.safetensors with bare names (`wte.weight`, ...), which
 * `GPT2LMHeadModel.from_pretrained` loads, the LM head tied to `wte`. Each
 * file is replaced atomically; the tensors are validated first, so a bad
 * checkpoint writes nothing.
 * @throws InvalidArgument if the tensors do not match `config`.
 */
export async function writeGpt2Folder(
  dir: string,
  config: GptConfig,
  tensors: Map<string, HostTensor>,
  options: WriteGpt2FolderOptions = {},
): Promise<void> {
  const dtype = options.dtype ?? 'F32';
  const modelPath = join(dir, MODEL_FILE);
  const bare = normalizeGpt2Tensors(config, tensors, modelPath);
  const torchDtype = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[dtype];
  const hf = configToHf(config, { torch_dtype: torchDtype, ...options.extraConfig });
  await mkdir(dir, { recursive: true });
  // transformers refuses safetensors files whose metadata lacks a known `format`.
  await writeSafetensors(modelPath, bare, { dtype, metadata: { format: 'pt' } });
  await writeFileAtomic(join(dir, CONFIG_FILE), [JSON.stringify(hf, null, 2) + '\n']);
}

/**
 * A seeded random GPT-2 checkpoint for tests: weights ~ N(0, 0.02) as GPT-2
 * initializes them, LayerNorm weights 1 + N(0, 0.1) and all biases
 * N(0, 0.02), so that tests exercise every parameter. Same seed, same tensors.
 */
export function randomGpt2Tensors(config: GptConfig, seed: number): Map<string, HostTensor> {
  const rng = new Rng(seed);
  const out = new Map<string, HostTensor>();
  for (const [name, shape] of hfTensorShapes(config)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    const isLnWeight = /(^|\.)ln_(1|2|f)\.weight$/.test(name);
    for (let i = 0; i < data.length; i++) {
      data[i] = isLnWeight ? 1 + 0.1 * rng.normal() : 0.02 * rng.normal();
    }
    out.set(name, { shape: [...shape], data });
  }
  return out;
}
