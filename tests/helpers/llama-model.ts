import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configFromHf, type LlamaConfig } from '../../src/model/gpt-config.js';
import { randomLlamaTensors, writeLlamaFolder, type WriteLlamaFolderOptions } from '../../src/model/checkpoint/hf-llama-folder.js';

export { writeLlamaFolder, type WriteLlamaFolderOptions } from '../../src/model/checkpoint/hf-llama-folder.js';
import type { HostTensor } from '../../src/model/checkpoint/safetensors.js';

/**
 * Llama-family test shapes: real models' config.json cut small (fewer
 * layers, a small vocabulary, narrower where the original is wide), keeping
 * what sets each apart. Values are as the hub's config.json files have them.
 */

/** SmolLM2-135M: llama, 9 heads sharing 3 key/value heads, tied head; width 576 kept, 2 of 30 layers, the test byte tokenizer's 257 ids. */
export const SMOLLM2_LIKE = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 0,
  eos_token_id: 0,
  hidden_act: 'silu',
  hidden_size: 576,
  initializer_range: 0.041666666666666664,
  intermediate_size: 1536,
  is_llama_config: true,
  max_position_embeddings: 8192,
  mlp_bias: false,
  model_type: 'llama',
  num_attention_heads: 9,
  num_hidden_layers: 2,
  num_key_value_heads: 3,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_interleaved: false,
  rope_scaling: null,
  rope_theta: 100000,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  use_cache: true,
  vocab_size: 257,
};

/** Qwen3-0.6B: head_dim 64 x 4 heads != hidden 128 (as 128 x 16 != 1024), q_norm/k_norm, tied. */
export const QWEN3_LIKE = {
  architectures: ['Qwen3ForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  head_dim: 64,
  hidden_act: 'silu',
  hidden_size: 128,
  intermediate_size: 384,
  max_position_embeddings: 40960,
  max_window_layers: 28,
  model_type: 'qwen3',
  num_attention_heads: 4,
  num_hidden_layers: 2,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_scaling: null,
  rope_theta: 1000000,
  sliding_window: null,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  use_cache: true,
  use_sliding_window: false,
  vocab_size: 320,
};

/**
 * Llama-3.1-8B: separate lm_head, 4:1 grouped-query attention, llama3 rope
 * scaling. original_max_position_embeddings is cut from 8192 to 64 so that
 * the scaling's three bands (kept, blended, stretched) all turn measurably
 * within the test's few dozen positions.
 */
export const LLAMA3_LIKE = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 128000,
  eos_token_id: 128001,
  hidden_act: 'silu',
  hidden_size: 128,
  initializer_range: 0.02,
  intermediate_size: 448,
  max_position_embeddings: 131072,
  mlp_bias: false,
  model_type: 'llama',
  num_attention_heads: 8,
  num_hidden_layers: 2,
  num_key_value_heads: 2,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 64, rope_type: 'llama3' },
  rope_theta: 500000.0,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  use_cache: true,
  vocab_size: 300,
};

/**
 * Qwen2.5-0.5B: q/k/v biases always (no attention_bias key), 2 key/value
 * heads; plus linear rope scaling under its pre-4.43 key `type`, which no
 * real shape here has.
 */
export const QWEN2_LIKE = {
  architectures: ['Qwen2ForCausalLM'],
  attention_dropout: 0.0,
  hidden_act: 'silu',
  hidden_size: 64,
  intermediate_size: 160,
  max_position_embeddings: 32768,
  max_window_layers: 21,
  model_type: 'qwen2',
  num_attention_heads: 4,
  num_hidden_layers: 2,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_scaling: { type: 'linear', factor: 4.0 },
  rope_theta: 1000000.0,
  sliding_window: 32768,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  use_cache: true,
  use_sliding_window: false,
  vocab_size: 256,
};

/**
 * A Qwen3 cut to a few dozen channels for finite differences: every entry of
 * a layer's LoRA matrices costs two reference passes. It keeps what makes the
 * projections' sizes all differ (q 32, k/v 16, o 32 -> 24, MLP 40 wide), q/k
 * norm, grouped-query attention, biases on q/k/v/o (attention_bias) and an
 * untied head.
 */
export const QWEN3_TINY = {
  architectures: ['Qwen3ForCausalLM'],
  attention_bias: true,
  head_dim: 8,
  hidden_act: 'silu',
  hidden_size: 24,
  intermediate_size: 40,
  max_position_embeddings: 256,
  model_type: 'qwen3',
  num_attention_heads: 4,
  num_hidden_layers: 2,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_scaling: null,
  rope_theta: 10000,
  sliding_window: null,
  tie_word_embeddings: false,
  use_sliding_window: false,
  vocab_size: 48,
};

export type HfConfigJson = Record<string, unknown>;

/** The parsed config of a test shape. */
export function llamaConfig(json: HfConfigJson): LlamaConfig {
  const config = configFromHf(json);
  if (config.family !== 'llama') throw new Error('not a Llama-family shape');
  return config;
}

/**
 * Seeded random weights of a shape, std 1 / sqrt(hidden_size): logits and
 * attention scores of order 1, so that a wrong detail moves them well past
 * the tests' tolerance.
 */
export function llamaTensors(json: HfConfigJson, seed: number): Map<string, HostTensor> {
  const config = llamaConfig(json);
  return randomLlamaTensors(config, seed, 1 / Math.sqrt(config.nEmbd));
}

/** A fresh temp dir holding a seeded random folder of `json`'s shape; returns the path. */
export async function llamaModelFolder(json: HfConfigJson, seed: number, options: WriteLlamaFolderOptions = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gentune-llama-'));
  await writeLlamaFolder(dir, json, llamaTensors(json, seed), options);
  return dir;
}
