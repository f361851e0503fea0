/**
 * The two ~130M-parameter models the decode benchmarks compare, as Hugging
 * Face folders of seeded random weights (random weights decode at the speed
 * of trained ones): SmolLM2-135M's shape (Llama family) and GPT-2 small's.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configFromHf, GPT2_SMALL, type GptConfig, type LlamaConfig } from '../../src/model/gpt-config.js';
import { randomGpt2Tensors, writeGpt2Folder } from '../../src/model/checkpoint/hf-gpt2-folder.js';
import { randomLlamaTensors, writeLlamaFolder } from '../../src/model/checkpoint/hf-llama-folder.js';
import { readModelFolder } from '../../src/model/checkpoint/hf-model-folder.js';
import { weightsFromHost } from '../../src/model/gpt-weights.js';
import { GptModel } from '../../src/model/gpt-model.js';
import { silentTokenizer } from './random-model.js';

const llama = (o: Record<string, unknown>) => ({ model_type: 'llama', hidden_act: 'silu', rms_norm_eps: 1e-5, rope_theta: 10000, max_position_embeddings: 2048, ...o });

/** The published shapes (config.json fields that set the size), by model. */
export const LLAMA_SHAPES: Record<string, Record<string, unknown>> = {
  'smollm2-135m': llama({ hidden_size: 576, num_hidden_layers: 30, num_attention_heads: 9, num_key_value_heads: 3, intermediate_size: 1536, vocab_size: 49152, tie_word_embeddings: true, rope_theta: 100000, max_position_embeddings: 8192 }),
  'smollm2-360m': llama({ hidden_size: 960, num_hidden_layers: 32, num_attention_heads: 15, num_key_value_heads: 5, intermediate_size: 2560, vocab_size: 49152, tie_word_embeddings: true, rope_theta: 100000, max_position_embeddings: 8192 }),
  'qwen2.5-0.5b': { model_type: 'qwen2', hidden_act: 'silu', hidden_size: 896, num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2, intermediate_size: 4864, vocab_size: 151936, tie_word_embeddings: true, rms_norm_eps: 1e-6, rope_theta: 1000000, max_position_embeddings: 32768, use_sliding_window: false },
  'qwen3-0.6b': { model_type: 'qwen3', hidden_act: 'silu', hidden_size: 1024, head_dim: 128, num_hidden_layers: 28, num_attention_heads: 16, num_key_value_heads: 8, intermediate_size: 3072, vocab_size: 151936, tie_word_embeddings: true, rms_norm_eps: 1e-6, rope_theta: 1000000, max_position_embeddings: 40960, use_sliding_window: false },
  'tinyllama-1.1b': llama({ hidden_size: 2048, num_hidden_layers: 22, num_attention_heads: 32, num_key_value_heads: 4, intermediate_size: 5632, vocab_size: 32000, tie_word_embeddings: false }),
  'llama-3.2-1b': llama({ hidden_size: 2048, num_hidden_layers: 16, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64, intermediate_size: 8192, vocab_size: 128256, tie_word_embeddings: true, rope_theta: 500000, max_position_embeddings: 131072, rope_scaling: { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } }),
  'mistral-7b-v0.3': { model_type: 'mistral', hidden_act: 'silu', hidden_size: 4096, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, intermediate_size: 14336, vocab_size: 32768, tie_word_embeddings: false, rms_norm_eps: 1e-5, rope_theta: 1000000, max_position_embeddings: 32768, sliding_window: null },
};

/** HuggingFaceTB/SmolLM2-135M's config.json: 30 layers of width 576, 9 heads over 3 key/value heads, vocabulary 49152, tied. */
export const SMOLLM2_135M = LLAMA_SHAPES['smollm2-135m']!;

/** The parsed config of a Llama-family shape. */
export function llamaConfig(json: Record<string, unknown>): LlamaConfig {
  const config = configFromHf(json);
  if (config.family !== 'llama') throw new Error('not a Llama-family shape');
  return config;
}

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
