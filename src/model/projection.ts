/** The weight types both families' weights are built from. */
import type * as tf from '@tensorflow/tfjs';

/**
 * A projection y = x @ weight (+ bias), weight stored [in, out] as in Hugging
 * Face GPT-2's Conv1D (nn.Linear's [out, in] weights are transposed at load:
 * a plain matMul is far faster on wasm than a transposeB one).
 */
export interface Projection {
  weight: tf.Tensor2D;
  bias?: tf.Tensor1D;
  /**
   * weight transposed ([out, in]), present only on frozen weights during
   * training: it lets the backward pass avoid a transposeB matMul, which is
   * about 10x slower than a plain one on the wasm backend.
   */
  weightT?: tf.Tensor2D;
}

/** Host-side arrays by Hugging Face name, as checkpoints hold them. */
export type HostTensors = Map<string, { shape: number[]; data: Float32Array }>;
