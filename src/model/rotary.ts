import * as tf from '@tensorflow/tfjs';
import type { LlamaConfig } from './llama-config.js';
import { recordingGradients } from './matmul.js';
import { hostRotary } from './kernels/host-kernels.js';
import { onHostBackend } from './kernels/host-memory.js';

/**
 * Rotary position embeddings in Hugging Face's rotate-half convention
 * (modeling_llama.py's apply_rotary_pos_emb): channel j of a head pairs with
 * channel j + headDim/2, and the pair turns by position * invFreq[j].
 */

/**
 * The rotation frequencies [headDim / 2] with the config's `rope_scaling`,
 * rounded to float32 at each step as transformers computes them
 * (modeling_rope_utils.py: _compute_default_rope_parameters, the linear and
 * llama3 variants).
 */
export function ropeInverseFrequencies(config: LlamaConfig): Float32Array {
  const dim = config.headDim;
  const f = Math.fround;
  const inv = Float32Array.from({ length: dim / 2 }, (_, j) => 1 / f(config.rope.theta ** f((2 * j) / dim)));
  const s = config.rope.scaling;
  if (s.type === 'linear') return inv.map((x) => x / s.factor);
  if (s.type === 'llama3') {
    // Wavelengths longer than the original context / low_freq_factor are
    // stretched by `factor`, shorter than context / high_freq_factor kept,
    // and those between blended linearly in context / wavelength.
    const lowFreqWavelen = s.originalMaxPositions / s.lowFreqFactor;
    const highFreqWavelen = s.originalMaxPositions / s.highFreqFactor;
    return inv.map((x) => {
      const wavelen = f((2 * Math.PI) / x);
      if (wavelen < highFreqWavelen) return x;
      if (wavelen > lowFreqWavelen) return x / s.factor;
      const smooth = f(f(f(s.originalMaxPositions / wavelen) - s.lowFreqFactor) / f(s.highFreqFactor - s.lowFreqFactor));
      return f(f(f(f(1 - smooth) * x) / s.factor) + f(smooth * x));
    });
  }
  return inv;
}

/** cos and sin of each row's rotation angles, [rows, 1, headDim]: they broadcast over a [rows, heads, headDim] tensor. */
export interface RotaryTables {
  cos: tf.Tensor3D;
  sin: tf.Tensor3D;
}

/** The tables for tokens at `positions` (one per row); the caller frees them (or a tidy does). */
export function rotaryTables(config: LlamaConfig, positions: Int32Array): RotaryTables {
  const inv = ropeInverseFrequencies(config);
  const half = inv.length;
  const dim = 2 * half;
  const cos = new Float32Array(positions.length * dim);
  const sin = new Float32Array(positions.length * dim);
  for (let r = 0; r < positions.length; r++) {
    for (let j = 0; j < half; j++) {
      // transformers multiplies inv_freq by the position in float32.
      const angle = Math.fround(positions[r] * inv[j]);
      cos[r * dim + j] = cos[r * dim + half + j] = Math.cos(angle);
      sin[r * dim + j] = sin[r * dim + half + j] = Math.sin(angle);
    }
  }
  const shape: [number, number, number] = [positions.length, 1, dim];
  return { cos: tf.tensor3d(cos, shape), sin: tf.tensor3d(sin, shape) };
}

/** x * cos + rotateHalf(x) * sin, for x [rows, heads, headDim]. */
export function applyRotary(x: tf.Tensor3D, tables: RotaryTables): tf.Tensor3D {
  // Inference on wasm/cpu: one kernel instead of 7 (see host-kernels.ts).
  if (!recordingGradients() && onHostBackend()) return hostRotary(x, tables.cos, tables.sin);
  return tf.tidy(() => {
    const [x1, x2] = tf.split(x, 2, -1);
    const rotated = tf.concat([tf.neg(x2), x1], -1); // rotate_half
    return tf.add(tf.mul(x, tables.cos), tf.mul(rotated, tables.sin)) as tf.Tensor3D;
  });
}
