import * as tf from '@tensorflow/tfjs';
import type { LayerKv } from './kv-cache.js';
import { matMul } from './matmul.js';

/** Additive mask value: large enough to zero a softmax term, finite so fully masked rows stay NaN-free. */
export const MASKED = -1e9;

/**
 * Causal multi-head self-attention on a flattened batch.
 * qkv: [batch * length, 3 * d] (the c_attn output). past: cached keys/values
 * of earlier columns. bias: additive mask [batch, 1, length, past + length].
 * Returns the attention output [batch * length, d] and the layer's keys/values
 * including the new columns.
 */
export function causalSelfAttention(
  qkv: tf.Tensor2D,
  batch: number,
  length: number,
  nHead: number,
  past: LayerKv | undefined,
  bias: tf.Tensor4D,
): { y: tf.Tensor2D; kv: LayerKv } {
  const d = qkv.shape[1] / 3;
  const hd = d / nHead;
  const [q, k, v] = tf.split(qkv, 3, 1).map((t) => tf.reshape(t, [batch, length, nHead, hd]));
  const q4 = tf.transpose(q, [0, 2, 1, 3]) as tf.Tensor4D; // [B, H, T, hd]
  let kT = tf.transpose(k, [0, 2, 3, 1]) as tf.Tensor4D; // [B, H, hd, T]
  let v4 = tf.transpose(v, [0, 2, 1, 3]) as tf.Tensor4D; // [B, H, T, hd]
  if (past && past.kT.shape[3] > 0) {
    kT = tf.concat([past.kT, kT], 3);
    v4 = tf.concat([past.v, v4], 2);
  }
  const scores = matMul(q4, kT).mul(1 / Math.sqrt(hd)).add(bias);
  const probs = tf.softmax(scores, -1) as tf.Tensor4D;
  const out = matMul(probs, v4); // [B, H, T, hd]
  const y = tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [batch * length, d]) as tf.Tensor2D;
  return { y, kv: { kT, v: v4 } };
}
