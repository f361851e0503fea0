import * as tf from '@tensorflow/tfjs';

/**
 * Reads several float32 tensors back to the host with one readback: they are
 * flattened into one tensor on the backend, read with `await data()`, and cut
 * apart again. One readback instead of one per tensor matters on GPU backends,
 * where each read is a pipeline stall. Returns copies, in order.
 */
export async function readTensors(tensors: readonly tf.Tensor[]): Promise<Float32Array[]> {
  if (tensors.length === 0) return [];
  const flat = tf.tidy(() => tf.concat(tensors.map((t) => tf.reshape(tf.cast(t, 'float32'), [-1])), 0));
  let data: Float32Array;
  try {
    data = (await flat.data()) as Float32Array;
  } finally {
    flat.dispose();
  }
  const out: Float32Array[] = [];
  let offset = 0;
  for (const t of tensors) {
    out.push(data.slice(offset, offset + t.size));
    offset += t.size;
  }
  return out;
}
