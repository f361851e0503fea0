import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgument } from '../../common/errors.js';
import { Rng } from '../../common/rng.js';
import { type LlamaConfig, llamaTensorShapes } from '../llama-config.js';
import { CONFIG_FILE, matchTensorShapes, readCheckpointTensors, readModelConfig } from './model-files.js';
import { type HostTensor, type SafetensorsDtype, writeSafetensors } from './safetensors.js';

/**
 * A Llama-family model folder in Hugging Face's layout: `config.json`
 * (model_type llama, mistral, qwen2 or qwen3) and the weights under
 * LlamaForCausalLM's names (`model.embed_tokens.weight`,
 * `model.layers.0.self_attn.q_proj.weight` [out, in], ..., `lm_head.weight`
 * unless tied), in one safetensors file or sharded.
 */

/** A Llama-family checkpoint in host memory, tensors under LlamaForCausalLM's names. */
export interface LlamaCheckpoint {
  config: LlamaConfig;
  tensors: Map<string, HostTensor>;
}

// Older exports saved each layer's rotary inv_freq buffer; it is derived, not a weight.
const IGNORED = /^(model\.)?layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/;

/** LlamaForCausalLM's name for `name`: the bare LlamaModel's names gain `model.`. */
const fullName = (name: string): string => (name.startsWith('model.') || name.startsWith('lm_head.') ? name : `model.${name}`);

/**
 * Checks that `tensors` is exactly a checkpoint for `config` (names with or
 * without `model.`); returns them under full names in llamaTensorShapes
 * order. A tied model's `lm_head.weight`, if saved, is dropped: transformers
 * ties it to embed_tokens on load.
 * @throws InvalidArgument naming `source` and the tensor.
 */
export function normalizeLlamaTensors(config: LlamaConfig, tensors: Map<string, HostTensor>, source: string): Map<string, HostTensor> {
  const named = new Map<string, HostTensor>();
  for (const [name, t] of tensors) {
    const key = fullName(name);
    if (IGNORED.test(key) || (config.tieWordEmbeddings && key === 'lm_head.weight')) continue;
    if (named.has(key)) throw new InvalidArgument(`${source}: tensor \`${key}\` appears both with and without \`model.\``);
    named.set(key, t);
  }
  const note =
    `config.json describes model_type ${config.modelType}, num_hidden_layers=${config.nLayer}, hidden_size=${config.nEmbd}, ` +
    `q/k/v bias ${config.qkvBias}, o_proj bias ${config.oBias}, mlp bias ${config.mlpBias}, tie_word_embeddings ${config.tieWordEmbeddings}`;
  return matchTensorShapes(llamaTensorShapes(config), named, source, note);
}

/**
 * Reads a Llama-family folder. F16/BF16 weights are widened to float32.
 * @throws NotFound if a file is missing; InvalidArgument (naming the file and
 *   the key or tensor) if config.json is malformed, not a Llama family's, or
 *   asks for what is not implemented, or a tensor is missing, misshapen or unexpected.
 */
export async function readLlamaFolder(dir: string): Promise<LlamaCheckpoint> {
  const config = await readModelConfig(dir);
  if (config.family !== 'llama') throw new InvalidArgument(`${join(dir, CONFIG_FILE)}: \`model_type\` gpt2 is not a Llama-family model`);
  return { config, tensors: await readLlamaTensors(dir, config) };
}

/** Reads and checks the weights of a Llama-family folder whose config is `config` (see readLlamaFolder). */
export async function readLlamaTensors(dir: string, config: LlamaConfig): Promise<Map<string, HostTensor>> {
  const { tensors, source } = await readCheckpointTensors(dir, (name) => !IGNORED.test(fullName(name)));
  return normalizeLlamaTensors(config, tensors, source);
}

/**
 * A seeded random Llama-family checkpoint for tests: norm gains 1 + N(0, 0.1),
 * everything else N(0, std) (default 0.02, as transformers initialises).
 */
export function randomLlamaTensors(config: LlamaConfig, seed: number, std = 0.02): Map<string, HostTensor> {
  const rng = new Rng(seed);
  const out = new Map<string, HostTensor>();
  for (const [name, shape] of llamaTensorShapes(config)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    const isNorm = /(layernorm|norm)\.weight$/.test(name);
    for (let i = 0; i < data.length; i++) data[i] = isNorm ? 1 + 0.1 * rng.normal() : std * rng.normal();
    out.set(name, { shape: [...shape], data });
  }
  return out;
}

/** Options of {@link writeLlamaFolder}. */
export interface WriteLlamaFolderOptions {
  dtype?: SafetensorsDtype;
  /** Split the tensors round-robin into this many shards with a model.safetensors.index.json (default 1: one file). */
  shards?: number;
}

/** Writes a folder {@link readLlamaFolder} reads: `json` as config.json and the tensors (one file, or shards and their index) into `dir` (created). */
export async function writeLlamaFolder(dir: string, json: Record<string, unknown>, tensors: Map<string, HostTensor>, options: WriteLlamaFolderOptions = {}): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), JSON.stringify(json, null, 2));
  const dtype = options.dtype ?? 'F32';
  const n = options.shards ?? 1;
  if (n === 1) {
    await writeSafetensors(join(dir, 'model.safetensors'), tensors, { dtype, metadata: { format: 'pt' } });
    return;
  }
  const names = [...tensors.keys()];
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < n; s++) {
    const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
    const part = new Map(names.filter((_, i) => i % n === s).map((name) => [name, tensors.get(name)!]));
    for (const name of part.keys()) weightMap[name] = file;
    await writeSafetensors(join(dir, file), part, { dtype, metadata: { format: 'pt' } });
  }
  const totalSize = [...tensors.values()].reduce((b, t) => b + t.data.length * (dtype === 'F32' ? 4 : 2), 0);
  await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2));
}
