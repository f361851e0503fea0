/**
 * The data of a resident LoRA adapter: which projections it can target, its
 * per-module A/B tensors, and the row runs a mixed batch is split into. Types
 * and constants only, shared by lora.ts (the forward pass) and lora-stack.ts
 * (the stacked multi-adapter path) without either importing the other's code.
 */
import type * as tf from '@tensorflow/tfjs';

/** Modules of a GPT-2 block that LoRA can target, named as in GPT2Block (PEFT's names). */
export const GPT2_LORA_TARGETS = ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'] as const;
/** Modules of a Llama-family block that LoRA can target, named as in LlamaDecoderLayer. */
export const LLAMA_LORA_TARGETS = [
  'self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj',
] as const;
/** A projection of a block, by its module name within the block; which a model has is its family's (family-modules.ts). */
export type LoraTarget = (typeof GPT2_LORA_TARGETS)[number] | (typeof LLAMA_LORA_TARGETS)[number];

/** One adapted projection. Stored for a plain forward matMul (PEFT's A is [r, in], B is [out, r]). */
export interface LoraModule {
  /** A transposed: [in, r]. */
  a: tf.Tensor2D;
  /** B transposed: [r, out]. */
  b: tf.Tensor2D;
}

/** A LoRA adapter resident on the backend: delta(x) = scale * (x @ a) @ b. */
export interface LoraWeights {
  r: number;
  alpha: number;
  /** alpha / r, or alpha / sqrt(r) with rsLoRA. */
  scale: number;
  targets: LoraTarget[];
  /** Key `${layer}.${target}`, e.g. `3.attn.c_attn`, `3.self_attn.q_proj`. */
  modules: Map<string, LoraModule>;
}

/**
 * A run of consecutive batch rows that use the same adapter (no adapter: the
 * base model). No per-step merging: the delta is added to the base output.
 */
export interface RowSegment {
  /** First batch row. */
  start: number;
  /** Rows in the run. */
  count: number;
  lora?: LoraWeights;
}
