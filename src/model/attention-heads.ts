/**
 * How a model's attention is laid out: its query and key/value heads, and the
 * projections a layer hands to attention. Shared by the tensor attention
 * (attention.ts), the KV caches and the paged attention kernel's arena.
 */
import type * as tf from '@tensorflow/tfjs';
import type { GptConfig } from './gpt-config.js';

/** How attention is split into heads. */
export interface AttentionHeads {
  /** Query heads. */
  nHead: number;
  /** Key/value heads: nHead, or a divisor of it (grouped-query attention). */
  nKvHead: number;
  headDim: number;
}

/** The heads of a config: GPT-2 has one key/value head per query head, of nEmbd / nHead channels. */
export function attentionHeads(config: GptConfig): AttentionHeads {
  if (config.family === 'llama') return { nHead: config.nHead, nKvHead: config.nKvHead, headDim: config.headDim };
  return { nHead: config.nHead, nKvHead: config.nHead, headDim: config.nEmbd / config.nHead };
}

/**
 * A layer's new queries, keys and values on a flattened batch: GPT-2's fused
 * c_attn output [rows, 3 * d], or separate q [rows, nHead * headDim] and
 * k, v [rows, nKvHead * headDim] (positions already encoded).
 */
export type QkvProjection = { fused: tf.Tensor2D } | { q: tf.Tensor2D; k: tf.Tensor2D; v: tf.Tensor2D };
