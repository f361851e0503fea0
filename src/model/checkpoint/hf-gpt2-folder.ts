import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgument } from '../../common/errors.js';
import { Rng } from '../../common/rng.js';
import { configToHf, hfTensorShapes } from '../gpt-config.js';
import type { Gpt2Config } from '../gpt-config.js';
import { CONFIG_FILE, matchTensorShapes, MODEL_FILE, readCheckpointTensors, readModelConfig } from './model-files.js';
import { writeFileAtomic } from '../../common/atomic-write.js';
import { writeSafetensors } from './safetensors.js';
import type { HostTensor, SafetensorsDtype } from './safetensors.js';

/**
 * A GPT-2 model folder in Hugging Face's layout: `config.json` plus
 * `model.safetensors`, tensor names as in `GPT2Model` (`wte.weight`,
 * `h.0.attn.c_attn.weight` [in, out], ...), optionally under `transformer.`
 * as `GPT2LMHeadModel.save_pretrained` writes them.
 */

/** A GPT-2 checkpoint in host memory: tensors under bare HF names (no `transformer.`). */
export interface Gpt2Checkpoint {
  config: Gpt2Config;
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
  config: Gpt2Config,
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
  const note = `config.json describes n_layer=${config.nLayer}, n_embd=${config.nEmbd}`;
  return matchTensorShapes(hfTensorShapes(config), bare, source, note);
}

/**
 * Reads a Hugging Face GPT-2 folder (`config.json` + `model.safetensors`, or
 * its shards). F16/BF16 checkpoints are widened to float32.
 * @throws NotFound if a file is missing; InvalidArgument (naming the file and
 *   the tensor) if config.json is malformed or not GPT-2's, or a tensor is
 *   missing, misshapen or unexpected.
 */
export async function readGpt2Folder(dir: string): Promise<Gpt2Checkpoint> {
  const config = await readGpt2Config(dir);
  return { config, tensors: await readGpt2Tensors(dir, config) };
}

/** Reads and checks the weights of a GPT-2 folder whose config is `config` (see readGpt2Folder). */
export async function readGpt2Tensors(dir: string, config: Gpt2Config): Promise<Map<string, HostTensor>> {
  // Skipped names are not decoded: newer exports may store the mask buffers as BOOL.
  const { tensors, source } = await readCheckpointTensors(dir, (name) => !IGNORED.test(bareName(name)));
  return normalizeGpt2Tensors(config, tensors, source);
}

/** Reads and checks a GPT-2 folder's `config.json` alone (the weights stay on disk). */
export async function readGpt2Config(dir: string): Promise<Gpt2Config> {
  const config = await readModelConfig(dir);
  if (config.family === 'llama') throw new InvalidArgument(`${join(dir, CONFIG_FILE)}: \`model_type\` ${config.modelType} is not GPT-2`);
  return config;
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
  config: Gpt2Config,
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
export function randomGpt2Tensors(config: Gpt2Config, seed: number): Map<string, HostTensor> {
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
