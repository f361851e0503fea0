import * as tf from '@tensorflow/tfjs';

/** The backends whose tensors live in host memory: wasm (its heap) and cpu (JS typed arrays). */
export const HOST_BACKENDS: readonly string[] = ['wasm', 'cpu'];

/** Whether the current backend keeps tensors in host memory. */
export function onHostBackend(): boolean {
  return HOST_BACKENDS.includes(tf.getBackend());
}

type Values = Float32Array | Int32Array;

interface WasmBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Values;
}

interface CpuBackend {
  data: { get(dataId: unknown): { values: Values } };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: Values): tf.TensorInfo;
}

/**
 * Zero-copy access to tensors inside a kernel registered for a host backend.
 * On wasm a view is of the heap, which an allocation can move: allocate
 * every output first ({@link output}), then take the views.
 */
export class HostMemory {
  constructor(private readonly backend: unknown) {}

  private get wasm(): WasmBackend | undefined {
    const b = this.backend as Partial<WasmBackend>;
    return typeof b.typedArrayFromHeap === 'function' ? (b as WasmBackend) : undefined;
  }

  /** A new output tensor of `shape` (contents undefined until written through {@link view}). */
  output(shape: number[], dtype: 'float32' | 'int32' = 'float32'): tf.TensorInfo {
    const wasm = this.wasm;
    if (wasm) return wasm.makeOutput(shape, dtype);
    const size = shape.reduce((a, b) => a * b, 1);
    return (this.backend as CpuBackend).makeTensorInfo(shape, dtype, dtype === 'int32' ? new Int32Array(size) : new Float32Array(size));
  }

  /** The tensor's data in place (float32 or int32). */
  view(info: tf.TensorInfo): Values {
    const wasm = this.wasm;
    if (wasm) return wasm.typedArrayFromHeap(info);
    return (this.backend as CpuBackend).data.get(info.dataId).values;
  }
}
