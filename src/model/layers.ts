import * as tf from '@tensorflow/tfjs';
import type { LayerNormWeights, Projection } from './gpt-weights.js';
import type { RmsNormWeights } from './llama-weights.js';
import { matMul, matMulFrozen, recordingGradients } from './matmul.js';
import { HOST_RMS_NORM_MAX_ELEMENTS, hostLayerNorm, hostRmsNorm } from './kernels/host-kernels.js';
import { onHostBackend } from './kernels/host-memory.js';

/** LayerNorm over the last axis. */
export function layerNorm(x: tf.Tensor2D, w: LayerNormWeights, eps: number): tf.Tensor2D {
  // Inference on wasm/cpu: one kernel instead of 11 (see host-kernels.ts).
  if (!recordingGradients() && onHostBackend()) return hostLayerNorm(x, w.weight as tf.Tensor1D, w.bias as tf.Tensor1D, eps);
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, -1, true);
    return x.sub(mean).mul(tf.rsqrt(variance.add(eps))).mul(w.weight).add(w.bias) as tf.Tensor2D;
  });
}

/**
 * RMSNorm over the last axis (Llama's, T5's): x / sqrt(mean(x^2) + eps) * weight,
 * float32 throughout as transformers computes it whatever the model's dtype.
 */
export function rmsNorm<T extends tf.Tensor>(x: T, w: RmsNormWeights, eps: number): T {
  // Inference on wasm/cpu, a few rows (decode): one kernel instead of 6 (see host-kernels.ts).
  if (!recordingGradients() && onHostBackend() && x.size <= HOST_RMS_NORM_MAX_ELEMENTS) return hostRmsNorm(x, w.weight, eps);
  return tf.tidy(() => tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), eps))), w.weight) as T);
}

/** The SwiGLU gate: silu(gate) * up, silu(g) = g * sigmoid(g). */
export function swiGlu(gate: tf.Tensor2D, up: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.mul(tf.mul(gate, tf.sigmoid(gate)), up) as tf.Tensor2D);
}

const GELU_C = Math.sqrt(2 / Math.PI);

/** GPT-2's tanh-approximated GELU (`gelu_new`), or the exact erf form (`gelu`). */
export function gelu(x: tf.Tensor2D, kind: 'gelu_new' | 'gelu'): tf.Tensor2D {
  return tf.tidy(() => {
    if (kind === 'gelu') return x.mul(tf.erf(x.div(Math.SQRT2)).add(1)).mul(0.5) as tf.Tensor2D;
    // 0.5 * (1 + tanh(z)) = sigmoid(2z), and z = C * x * (1 + 0.044715 x^2):
    // 6 kernels instead of 9, and wasm's Sigmoid is vectorised where its Tanh
    // is not (bench/gelu.ts); the numpy reference test pins the values.
    return x.mul(tf.sigmoid(x.square().mul(2 * GELU_C * 0.044715).add(2 * GELU_C).mul(x))) as tf.Tensor2D;
  });
}

/**
 * y = x @ W (+ b) on 2D input, with transpose-free gradients (see matmul.ts);
 * frozen weights that carry `weightT` reuse that precomputed transpose.
 */
export function linear(x: tf.Tensor2D, lin: Projection): tf.Tensor2D {
  // Inference: one fused matMul + bias kernel; without a bias (most Llama-family
  // projections) a plain matMul, the same kernel without the fused op's
  // reshapes and gradient scope (~13 us less each on wasm, 210 times a
  // SmolLM2-135M decode step).
  if (!recordingGradients()) return lin.bias ? (tf.fused.matMul({ a: x, b: lin.weight, bias: lin.bias }) as tf.Tensor2D) : tf.matMul(x, lin.weight);
  const y = lin.weightT ? matMulFrozen(x, lin.weight, lin.weightT) : matMul(x, lin.weight);
  return lin.bias ? (tf.add(y, lin.bias) as tf.Tensor2D) : y;
}
