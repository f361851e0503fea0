/**
 * The two ~130M-parameter models the decode benchmarks compare, as Hugging
 * Face folders of seeded random weights (random weights decode at the speed
 * of trained ones): SmolLM2-135M's shape (Llama family) and GPT-2 small's.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GPT2_SMALL, type GptConfig } from '../../src/model/gpt-config.js';
import { randomGpt2Tensors, writeGpt2Folder } from '../../src/model/checkpoint/hf-gpt2-folder.js';
import { randomLlamaTensors } from '../../src/model/checkpoint/hf-llama-folder.js';
import { readModelFolder } from '../../src/model/checkpoint/hf-model-folder.js';
import { weightsFromHost } from '../../src/model/gpt-weights.js';
import { GptModel } from '../../src/model/gpt-model.js';
import { llamaConfig, SMOLLM2_LIKE, writeLlamaFolder } from '../../tests/helpers/llama-model.js';
import { silentTokenizer } from './random-model.js';

/** HuggingFaceTB/SmolLM2-135M's config.json: 30 layers of width 576, 9 heads over 3 key/value heads, vocabulary 49152, tied. */
export const SMOLLM2_135M = { ...SMOLLM2_LIKE, num_hidden_layers: 30, vocab_size: 49152 };

export const BENCH_MODELS = ['smollm2-135m', 'gpt2'] as const;
export type BenchModel = (typeof BENCH_MODELS)[number];

/** The config of a benchmark model. */
export function benchModelConfig(name: BenchModel): GptConfig {
  return name === 'gpt2' ? GPT2_SMALL : llamaConfig(SMOLLM2_135M);
}

/** Writes a seeded random folder of `name`'s shape (float32) into a fresh temp dir; returns its path. */
export async function writeBenchModel(name: BenchModel, seed = 1): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `gentune-bench-${name}-`));
  if (name === 'gpt2') await writeGpt2Folder(dir, GPT2_SMALL, randomGpt2Tensors(GPT2_SMALL, seed));
  else await writeLlamaFolder(dir, SMOLLM2_135M, randomLlamaTensors(llamaConfig(SMOLLM2_135M), seed));
  return dir;
}

/** Loads a benchmark folder as the server does (readModelFolder, then upload), with a tokenizer stand-in. */
export async function loadBenchModel(dir: string, name: string): Promise<GptModel> {
  const ckpt = await readModelFolder(dir);
  return new GptModel(ckpt.config, weightsFromHost(ckpt.config, ckpt.tensors), silentTokenizer(ckpt.config.vocabSize), name, dir);
}

/** The seeded random model of `name`'s shape, straight onto the backend (no folder). */
export function benchModelInMemory(name: BenchModel, seed = 1): GptModel {
  const config = benchModelConfig(name);
  const tensors = config.family === 'llama' ? randomLlamaTensors(config, seed) : randomGpt2Tensors(config, seed);
  return new GptModel(config, weightsFromHost(config, tensors), silentTokenizer(config.vocabSize), name);
}
