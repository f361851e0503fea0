import * as tf from '@tensorflow/tfjs';
import type { AttentionHeads, QkvProjection } from './attention-heads.js';
import type { LayerKv } from './kv-cache.js';
import { matMul } from './matmul.js';

/** Additive mask value: large enough to zero a softmax term, finite so fully masked rows stay NaN-free. */
export const MASKED = -1e9;

/**
 * Causal multi-head self-attention on a flattened batch. past: cached
 * keys/values of earlier columns. bias: additive mask [batch, 1, length,
 * past + length]. Returns the attention output [batch * length, nHead *
 * headDim] and the layer's keys/values including the new columns.
 */
export function causalSelfAttention(
  qkv: QkvProjection,
  batch: number,
  length: number,
  heads: AttentionHeads,
  past: LayerKv | undefined,
  bias: tf.Tensor4D,
): { y: tf.Tensor2D; kv: LayerKv } {
  const { nHead, nKvHead, headDim: hd } = heads;
  const { q, k, v } = 'fused' in qkv ? splitQkv(qkv.fused) : qkv;
  const q4 = tf.transpose(tf.reshape(q, [batch, length, nHead, hd]), [0, 2, 1, 3]) as tf.Tensor4D; // [B, H, T, hd]
  let kT = tf.transpose(tf.reshape(k, [batch, length, nKvHead, hd]), [0, 2, 3, 1]) as tf.Tensor4D; // [B, KV, hd, T]
  let v4 = tf.transpose(tf.reshape(v, [batch, length, nKvHead, hd]), [0, 2, 1, 3]) as tf.Tensor4D; // [B, KV, T, hd]
  if (past && past.kT.shape[3] > 0) {
    kT = tf.concat([past.kT, kT], 3);
    v4 = tf.concat([past.v, v4], 2);
  }
  const keys = kT.shape[3];
  // Grouped-query attention without repeating K and V (transformers' repeat_kv):
  // query head h uses key/value head h / group, so the group's heads stack
  // along the token axis, [B, KV, group * T, hd], against one shared key head.
  const group = nHead / nKvHead;
  const grouped = (t: tf.Tensor4D, rows: number, cols: number) => (group === 1 ? t : (tf.reshape(t, [batch, nKvHead, group * rows, cols]) as tf.Tensor4D));
  const perHead = (t: tf.Tensor4D, cols: number) => (group === 1 ? t : (tf.reshape(t, [batch, nHead, length, cols]) as tf.Tensor4D));
  const scores = perHead(matMul(grouped(q4, length, hd), kT), keys).mul(1 / Math.sqrt(hd)).add(bias);
  const probs = tf.softmax(scores, -1) as tf.Tensor4D;
  const out = perHead(matMul(grouped(probs, length, keys), v4), hd); // [B, H, T, hd]
  const y = tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [batch * length, nHead * hd]) as tf.Tensor2D;
  return { y, kv: { kT, v: v4 } };
}

function splitQkv(fused: tf.Tensor2D): { q: tf.Tensor2D; k: tf.Tensor2D; v: tf.Tensor2D } {
  const [q, k, v] = tf.split(fused, 3, 1) as tf.Tensor2D[];
  return { q, k, v };
}
