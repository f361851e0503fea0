import type * as tf from '@tensorflow/tfjs';
import type { QkvProjection } from './attention-heads.js';
import type { Projection } from './gpt-weights.js';

/**
 * What a model family puts into the one decoder of gpt.ts: its embedding,
 * the four steps around attention in block `i`, and its final norm and LM
 * head. GPT-2's are gpt2-parts.ts (LayerNorm, learned positions, fused
 * c_attn, GELU MLP); the Llama family's are llama-parts.ts (RMSNorm, rotary
 * positions, grouped-query projections, SwiGLU MLP). Each is built per
 * forward pass, inside its tidy.
 */
export interface DecoderParts {
  /** Token (and, for GPT-2, position) embeddings [rows, d]. */
  embed(ids: tf.Tensor1D, positions: tf.Tensor1D): tf.Tensor2D;
  /** Block i's norm before attention. */
  attnNorm(i: number, x: tf.Tensor2D): tf.Tensor2D;
  /** Block i's queries, keys and values for the normalised input, positions encoded. */
  qkv(i: number, h: tf.Tensor2D): QkvProjection;
  /** Block i's projection of the attention output back to d. */
  attnOut(i: number, y: tf.Tensor2D): tf.Tensor2D;
  /** Block i's norm before the MLP. */
  mlpNorm(i: number, x: tf.Tensor2D): tf.Tensor2D;
  mlp(i: number, h: tf.Tensor2D): tf.Tensor2D;
  finalNorm(x: tf.Tensor2D): tf.Tensor2D;
  /** Logits [rows, vocab]. */
  lmHead(x: tf.Tensor2D): tf.Tensor2D;
}

/**
 * A projection as the forward pass runs it: `linear`, plus the LoRA delta
 * of module `key` (`${layer}.${module}`, e.g. `3.attn.c_attn`,
 * `3.self_attn.k_proj`: the family's LoRA targets, see family-modules.ts)
 * for the rows whose adapter has one.
 */
export type Project = (x: tf.Tensor2D, p: Projection, key: string) => tf.Tensor2D;
