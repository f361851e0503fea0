import * as tf from '@tensorflow/tfjs';

/** Gradients after clipping, and the norm they had before. */
export interface ClippedGradients {
  /** New tensors, in the order given; the caller frees them. */
  grads: tf.Tensor[];
  /** The global L2 norm before clipping (a scalar the caller frees). */
  norm: tf.Scalar;
}

/**
 * Global-norm clipping as `torch.nn.utils.clip_grad_norm_`: with
 * `norm = sqrt(sum of every squared gradient entry)`, every gradient is scaled
 * by `min(1, maxNorm / (norm + 1e-6))`. `maxNorm` <= 0 or Infinity turns
 * clipping off (the norm is still computed, for progress reports).
 *
 * Nothing is read back: the scale stays on the backend, so the caller can batch
 * the norm with its other per-step scalars into one readback.
 */
export function clipByGlobalNorm(grads: readonly tf.Tensor[], maxNorm: number): ClippedGradients {
  return tf.tidy(() => {
    const squares = grads.map((g) => tf.sum(tf.square(g)));
    const norm = tf.sqrt(squares.length === 1 ? squares[0] : tf.addN(squares)) as tf.Scalar;
    if (!(maxNorm > 0) || maxNorm === Infinity) return { grads: grads.map((g) => tf.clone(g)), norm };
    const scale = tf.minimum(tf.div(maxNorm, tf.add(norm, 1e-6)), 1);
    return { grads: grads.map((g) => tf.mul(g, scale)), norm };
  });
}
