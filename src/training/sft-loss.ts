import * as tf from '@tensorflow/tfjs';
import type { Batch } from './data/collate.js';

type CustomGradientFunc = Parameters<typeof tf.customGrad>[0];

/**
 * The positions of a batch that count in the loss, on the host: rows of the
 * flattened `[size * seqLen]` batch whose loss weight is > 0, with their
 * target ids and weights. Only these rows reach the LM head.
 */
export interface LossRows {
  /** Indices into the flattened batch, ascending. */
  rows: Int32Array;
  /** Next-token id at each row. */
  targets: Int32Array;
  /** Loss weight at each row (> 0). */
  weights: Float32Array;
  /** Sum of `weights` (tokens, for 0/1 weights). */
  weightSum: number;
}

/** The loss rows of a batch (see {@link LossRows}). */
export function lossRows(batch: Batch): LossRows {
  const n = batch.lossWeights.length;
  let count = 0;
  for (let i = 0; i < n; i++) if (batch.lossWeights[i] > 0) count++;
  const rows = new Int32Array(count);
  const targets = new Int32Array(count);
  const weights = new Float32Array(count);
  let weightSum = 0;
  for (let i = 0, k = 0; i < n; i++) {
    const w = batch.lossWeights[i];
    if (!(w > 0)) continue;
    rows[k] = i;
    targets[k] = batch.targets[i];
    weights[k] = w;
    weightSum += w;
    k++;
  }
  return { rows, targets, weights, weightSum };
}

/**
 * `tf.gather(x, rows)` on axis 0, whose gradient is a ScatterNd (which sums
 * repeated rows) instead of UnsortedSegmentSum, which the wasm backend lacks.
 */
export function gatherRows(x: tf.Tensor2D, rows: tf.Tensor1D): tf.Tensor2D {
  const shape = x.shape;
  const f = tf.customGrad(((input: tf.Tensor, save: tf.GradSaveFunc) => {
    // Saved, not captured: `rows` may be freed by the caller's tidy before the backward pass.
    save([rows]);
    return {
      value: tf.gather(input, rows),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.scatterND(tf.reshape(saved[0], [-1, 1]), dy, shape),
    };
  }) as unknown as CustomGradientFunc);
  return f(x) as tf.Tensor2D;
}

// Smallest normal float32: caps one token's loss at about 87 nats when its
// probability underflows, rather than returning Infinity.
const MIN_PROB = 1.1754944e-38;

/** [i, targets[i]] index pairs for gatherND / tensorScatterUpdate on a [rows, vocab] tensor. */
function targetIndices(targets: tf.Tensor1D): tf.Tensor2D {
  return tf.stack([tf.range(0, targets.shape[0], 1, 'int32'), targets], 1) as tf.Tensor2D;
}

/**
 * Weighted softmax cross-entropy over rows of logits:
 * `sum_i w_i * -log softmax(logits_i)[targets_i] / normalizer`, with a custom
 * gradient `dlogits = (softmax - onehot) * w / normalizer` (no one-hot tensor:
 * `tf.oneHot(..., 'float32')` is wrong on wasm, so the target entries are
 * rewritten with tensorScatterUpdate).
 *
 * logits [rows, vocab] float32; targets [rows] int32; weights [rows] float32.
 */
export function softmaxCrossEntropy(
  logits: tf.Tensor2D,
  targets: tf.Tensor1D,
  weights: tf.Tensor1D,
  normalizer: number,
): tf.Scalar {
  const f = tf.customGrad(((z: tf.Tensor, save: tf.GradSaveFunc) => {
    const idx = targetIndices(targets);
    const probs = tf.softmax(z as tf.Tensor2D);
    const pTarget = tf.gatherND(probs, idx) as tf.Tensor1D;
    const coef = tf.div(weights, normalizer) as tf.Tensor1D;
    const loss = tf.sum(tf.mul(tf.neg(tf.log(tf.maximum(pTarget, MIN_PROB))), coef));
    const dz = tf.tensorScatterUpdate(tf.mul(probs, tf.reshape(coef, [-1, 1])), idx, tf.mul(tf.sub(pTarget, 1), coef));
    save([dz]);
    return { value: loss, gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.mul(saved[0], dy) };
  }) as unknown as CustomGradientFunc);
  return f(logits) as tf.Scalar;
}

/**
 * The frozen LM head: logits = hidden @ wteT. GPT-2's is tied to the token
 * embeddings; a Llama-family model's is too, or its own lm_head.weight.
 */
export interface LmHead {
  /** The head's weight [vocab, d] (GPT-2's token embeddings). */
  wte: tf.Tensor2D;
  /** Its transpose [d, vocab]. */
  wteT: tf.Tensor2D;
}

/** Options of the fused LM-head losses. */
export interface HeadLossOptions {
  /**
   * Logits materialised at once, in elements (default 3M = 12 MB, about 60
   * rows of GPT-2's vocabulary): rows are processed in chunks of
   * `max(1, floor(chunkElements / vocab))`, so the [rows, vocab] logits never
   * exist whole. On wasm, 32..128-row chunks of a 50257 vocabulary ran
   * fastest (bench/train.ts); much larger ones only cost memory.
   */
  chunkElements?: number;
}

const DEFAULT_CHUNK_ELEMENTS = 3 * 1024 * 1024;

function chunkRows(rows: number, vocab: number, options: HeadLossOptions): number {
  return Math.min(rows, Math.max(1, Math.floor((options.chunkElements ?? DEFAULT_CHUNK_ELEMENTS) / vocab)));
}

/**
 * The SFT training loss through the frozen LM head, fused and chunked:
 * `sum_i w_i * CE(hidden_i @ wteT, targets_i) / normalizer`, a scalar whose
 * gradient flows to `hidden` only.
 *
 * The gradient is computed chunk by chunk during the forward pass (the loss is
 * the graph's end, so nothing upstream can change it) as
 * `dhidden_i = w_i / normalizer * (softmax_i @ wte - wte[targets_i])`, which is
 * `(softmax - onehot) @ wte` without a one-hot. So a chunk's logits are freed
 * before the next chunk's exist; the full [rows, vocab] never does.
 *
 * hidden [rows, d] (only rows that count: see {@link gatherRows}); targets
 * [rows] int32; weights [rows] float32 (> 0); normalizer: the weight sum over
 * the whole optimizer step (tokens), so accumulated micro-batches add up to
 * one batch's mean.
 */
export function lmHeadCrossEntropy(
  hidden: tf.Tensor2D,
  head: LmHead,
  targets: tf.Tensor1D,
  weights: tf.Tensor1D,
  normalizer: number,
  options: HeadLossOptions = {},
): tf.Scalar {
  const f = tf.customGrad(((h: tf.Tensor, save: tf.GradSaveFunc) => {
    const [rows, d] = h.shape;
    const step = chunkRows(rows, head.wte.shape[0], options);
    const losses: tf.Tensor[] = [];
    const grads: tf.Tensor[] = [];
    for (let start = 0; start < rows; start += step) {
      // One tidy per chunk: its [n, vocab] tensors are freed before the next chunk's exist.
      const [loss, dh] = tf.tidy(() => {
        const n = Math.min(step, rows - start);
        const t = tf.slice(targets, start, n) as tf.Tensor1D;
        const coef = tf.div(tf.slice(weights, start, n), normalizer) as tf.Tensor1D;
        const probs = tf.softmax(tf.matMul(tf.slice(h, [start, 0], [n, d]) as tf.Tensor2D, head.wteT));
        const pTarget = tf.gatherND(probs, targetIndices(t));
        const chunkLoss = tf.sum(tf.mul(tf.neg(tf.log(tf.maximum(pTarget, MIN_PROB))), coef));
        const dhChunk = tf.sub(tf.matMul(probs, head.wte), tf.gather(head.wte, t));
        return [chunkLoss, tf.mul(dhChunk, tf.reshape(coef, [-1, 1]))];
      });
      losses.push(loss);
      grads.push(dh);
    }
    if (rows === 0) {
      losses.push(tf.scalar(0));
      grads.push(tf.zerosLike(h));
    }
    save([grads.length === 1 ? grads[0] : tf.concat(grads, 0)]);
    return {
      value: losses.length === 1 ? losses[0] : tf.addN(losses),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.mul(saved[0], dy),
    };
  }) as unknown as CustomGradientFunc);
  return f(hidden) as tf.Scalar;
}

/**
 * Evaluation sums through the LM head, chunked like {@link lmHeadCrossEntropy},
 * no gradient: a [2] tensor `[sum_i w_i * CE_i, sum_i w_i * (argmax_i == target_i)]`.
 * Divide both by the weight sum for the mean loss (nats/token) and the token accuracy.
 */
export function lmHeadEvalSums(
  hidden: tf.Tensor2D,
  head: Pick<LmHead, 'wteT'>,
  targets: tf.Tensor1D,
  weights: tf.Tensor1D,
  options: HeadLossOptions = {},
): tf.Tensor1D {
  return tf.tidy(() => {
    const [rows, d] = hidden.shape;
    const step = chunkRows(rows, head.wteT.shape[1], options);
    const parts: tf.Tensor[] = [tf.zeros([2])];
    for (let start = 0; start < rows; start += step) {
      const part = tf.tidy(() => {
        const n = Math.min(step, rows - start);
        const t = tf.slice(targets, start, n) as tf.Tensor1D;
        const w = tf.slice(weights, start, n);
        const logits = tf.matMul(tf.slice(hidden, [start, 0], [n, d]) as tf.Tensor2D, head.wteT);
        const pTarget = tf.gatherND(tf.softmax(logits), targetIndices(t));
        const loss = tf.sum(tf.mul(tf.neg(tf.log(tf.maximum(pTarget, MIN_PROB))), w));
        const correct = tf.sum(tf.mul(tf.cast(tf.equal(tf.argMax(logits, 1), t), 'float32'), w));
        return tf.stack([loss, correct]);
      });
      parts.push(part);
    }
    return (parts.length === 1 ? parts[0] : tf.addN(parts)) as tf.Tensor1D;
  });
}
