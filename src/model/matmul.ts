import * as tf from '@tensorflow/tfjs';

type CustomGradientFunc = Parameters<typeof tf.customGrad>[0];

/**
 * On the wasm backend a matMul with transposeA or transposeB runs 15-20x slower
 * than an explicit tf.transpose followed by a plain matMul (bench/scratch
 * measurement: 1024x768x2304, 2.9 s vs 0.19 s). Autodiff of tf.matMul emits
 * exactly those flags, so every matMul that is differentiated goes through
 * these custom gradients instead.
 */

/**
 * True while a gradient tape is recording (inside tf.grad / variableGrads).
 * Outside of one, the custom-gradient wrappers are pure overhead, so the
 * inference path uses plain (and fused) kernels.
 */
export function recordingGradients(): boolean {
  return (tf.engine() as unknown as { state: { gradientDepth: number } }).state.gradientDepth > 0;
}

function swapLast2(t: tf.Tensor): tf.Tensor {
  const perm = t.shape.map((_, i) => i);
  const n = perm.length;
  [perm[n - 2], perm[n - 1]] = [perm[n - 1], perm[n - 2]];
  return tf.transpose(t, perm);
}

/** a @ b (2D, or batched with equal batch dims) with transpose-free gradients for both inputs. */
export function matMul<T extends tf.Tensor>(a: T, b: tf.Tensor): T {
  if (!recordingGradients()) return tf.matMul(a as unknown as tf.Tensor2D, b as tf.Tensor2D) as unknown as T;
  const f = tf.customGrad(((x: tf.Tensor, y: tf.Tensor, save: tf.GradSaveFunc) => {
    save([x, y]);
    return {
      value: tf.matMul(x as tf.Tensor2D, y as tf.Tensor2D),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, ys] = saved;
        return [tf.matMul(dy as tf.Tensor2D, swapLast2(ys) as tf.Tensor2D), tf.matMul(swapLast2(xs) as tf.Tensor2D, dy as tf.Tensor2D)];
      },
    };
  }) as unknown as CustomGradientFunc);
  return f(a, b) as T;
}

/**
 * a @ b where b is a constant (frozen weight) and bT its precomputed transpose:
 * the gradient flows to `a` only, as dy @ bT.
 */
export function matMulFrozen(a: tf.Tensor2D, b: tf.Tensor2D, bT: tf.Tensor2D): tf.Tensor2D {
  if (!recordingGradients()) return tf.matMul(a, b);
  const f = tf.customGrad(((x: tf.Tensor) => ({
    value: tf.matMul(x as tf.Tensor2D, b),
    gradFunc: (dy: tf.Tensor) => tf.matMul(dy as tf.Tensor2D, bT),
  })) as unknown as CustomGradientFunc);
  return f(a) as tf.Tensor2D;
}

/**
 * Rows of `table` at `ids` (an embedding lookup) whose gradient is a
 * ScatterNd (summing repeated ids) instead of UnsortedSegmentSum, which the
 * wasm backend lacks.
 */
export function embed(table: tf.Tensor2D, ids: tf.Tensor1D): tf.Tensor2D {
  // ids is an input (and saved) rather than a closure: the backward pass can
  // run after the forward pass's tidy has freed its intermediates.
  const f = tf.customGrad(((t: tf.Tensor, i: tf.Tensor, save: tf.GradSaveFunc) => {
    save([i]);
    return {
      value: tf.gather(t, i),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [
        tf.scatterND(tf.reshape(saved[0], [-1, 1]), dy, t.shape),
        tf.zerosLike(saved[0]),
      ],
    };
  }) as unknown as CustomGradientFunc);
  return f(table, ids) as tf.Tensor2D;
}
