/**
 * The `webgpu` backend: @tensorflow/tfjs-backend-webgpu on Dawn's Node
 * bindings (npm `webgpu`, a prebuilt dawn.node), over Vulkan. On a GPU host
 * that is the vendor's Vulkan driver; anywhere else Mesa's lavapipe (a
 * software Vulkan driver) makes it testable.
 *
 * Order matters: the tfjs package registers its backend at import time only
 * if `navigator.gpu` exists, and its kernels use the WebGPU globals
 * (GPUBufferUsage, GPUMapMode ...), so Dawn's globals and `navigator.gpu` are
 * installed first and the backend package is imported after.
 *
 * Values on this backend can only be read back with `await tensor.data()`:
 * `dataSync()` / `arraySync()` need an OffscreenCanvas, which Node lacks.
 */
import * as tf from '@tensorflow/tfjs';
import {
  adapterInfo,
  describeAdapter,
  rawAdapterInfo,
  requestAdapter,
  softwareOnlyReason,
  type GpuAdapterLike,
  type GpuDeviceLike,
  type RawAdapterInfo,
  type WebGpuAdapterInfo,
} from './dawn-adapter.js';

export { describeAdapter, isSoftwareAdapter, probeWebGpuAdapter, type WebGpuAdapterInfo } from './dawn-adapter.js';

/** What `initWebGpu` did: the backend it set up, or why it did not. */
export type WebGpuResult =
  | { ok: true; name: 'webgpu'; device: string; adapter: WebGpuAdapterInfo }
  | { ok: false; reason: string; adapter?: WebGpuAdapterInfo };

export interface WebGpuOptions {
  /** Accept a software adapter (an explicit `--backend webgpu` does; `auto` does not). */
  allowSoftware: boolean;
  /**
   * Dawn options for `create()`, e.g. `backend=vulkan` or `adapter=NVIDIA`
   * (config `dawnOptions`: --dawn-options / GENTUNE_DAWN_OPTIONS). Default none.
   */
  dawnOptions?: string[];
}

let validationErrors = 0;

/**
 * WebGPU errors nothing captured on the backend's device (an invalid pipeline,
 * an out-of-memory buffer): such a kernel silently produces garbage, so tests
 * assert this stays 0. Dawn also prints each one.
 */
export function webGpuErrorCount(): number {
  return validationErrors;
}

/**
 * Registers the `webgpu` backend factory on `adapter`, the one whose info is
 * reported. Same device set-up as @tensorflow/tfjs-backend-webgpu's own
 * factory, plus the adapter's maxStorageBuffersPerShaderStage (the WebGPU
 * default, 8, is too few for AddN over a model's gradients) and an error
 * counter.
 */
function registerFactory(pkg: { WebGPUBackend: new (device: GpuDeviceLike, info?: RawAdapterInfo) => tf.KernelBackend }, adapter: GpuAdapterLike): void {
  tf.removeBackend('webgpu');
  tf.registerBackend(
    'webgpu',
    async () => {
      const requiredFeatures = ['timestamp-query', 'bgra8unorm-storage'].filter((f) => adapter.features.has(f));
      const limitNames = [
        'maxComputeWorkgroupStorageSize',
        'maxComputeWorkgroupsPerDimension',
        'maxStorageBufferBindingSize',
        'maxBufferSize',
        'maxComputeWorkgroupSizeX',
        'maxComputeInvocationsPerWorkgroup',
        'maxStorageBuffersPerShaderStage',
      ];
      const requiredLimits = Object.fromEntries(limitNames.filter((n) => typeof adapter.limits[n] === 'number').map((n) => [n, adapter.limits[n]]));
      const device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
      device.addEventListener('uncapturederror', () => {
        validationErrors++;
      });
      void device.lost.then((info) => {
        if (info.reason !== 'destroyed') process.emitWarning(`WebGPU device lost: ${info.message}`);
      });
      return new pkg.WebGPUBackend(device, await rawAdapterInfo(adapter));
    },
    3,
  );
}

/**
 * AddN with more inputs than a shader stage has storage buffers (one is the
 * output) fails pipeline validation and leaves garbage: tfjs splits Concat
 * that way but not AddN. Sums such inputs in chunks, then the partial sums.
 */
function patchAddN(): void {
  const original = tf.getKernel('AddN', 'webgpu');
  if (!original || (original as { gentuneChunked?: boolean }).gentuneChunked) return;
  const kernelFunc = original.kernelFunc;
  tf.unregisterKernel('AddN', 'webgpu');
  tf.registerKernel({
    ...original,
    gentuneChunked: true,
    kernelFunc: (args) => {
      const backend = args.backend as unknown as { device: GpuDeviceLike; disposeData(dataId: object): void };
      const max = Math.max(2, (backend.device.limits.maxStorageBuffersPerShaderStage ?? 8) - 1);
      let parts = args.inputs as unknown as tf.TensorInfo[];
      const temporary = new Set<tf.TensorInfo>();
      while (parts.length > max) {
        const next: tf.TensorInfo[] = [];
        for (let i = 0; i < parts.length; i += max) {
          const chunk = parts.slice(i, i + max);
          if (chunk.length === 1) {
            next.push(chunk[0]);
            continue;
          }
          const sum = kernelFunc({ ...args, inputs: chunk as unknown as tf.NamedTensorInfoMap }) as tf.TensorInfo;
          temporary.add(sum);
          next.push(sum);
        }
        for (const t of parts) if (temporary.has(t) && !next.includes(t)) backend.disposeData(t.dataId);
        parts = next;
      }
      const out = kernelFunc({ ...args, inputs: parts as unknown as tf.NamedTensorInfoMap });
      for (const t of parts) if (temporary.has(t)) backend.disposeData(t.dataId);
      return out;
    },
  } as tf.KernelConfig);
}

/**
 * Sets up the webgpu backend: Dawn globals, adapter, then
 * @tensorflow/tfjs-backend-webgpu, `tf.setBackend('webgpu')` (checked), and a
 * one-op smoke test read back with `await data()`. Never throws for a missing
 * package, adapter or driver: it says why instead, so that the caller can fall
 * back to the next backend.
 */
export async function initWebGpu(options: WebGpuOptions): Promise<WebGpuResult> {
  const found = await requestAdapter(options.dawnOptions ?? []);
  if (!found.adapter) return { ok: false, reason: found.reason ?? 'no adapter' };
  const adapter = await adapterInfo(found.adapter);
  if (adapter.software && !options.allowSoftware) {
    return { ok: false, adapter, reason: softwareOnlyReason(adapter) };
  }
  let pkg: Parameters<typeof registerFactory>[0];
  try {
    const name = '@tensorflow/tfjs-backend-webgpu';
    pkg = (await import(name)) as typeof pkg;
  } catch (err) {
    return { ok: false, adapter, reason: `@tensorflow/tfjs-backend-webgpu could not be loaded: ${(err as Error).message}` };
  }
  if (!tf.findBackendFactory('webgpu') || typeof pkg.WebGPUBackend !== 'function') {
    return { ok: false, adapter, reason: 'the webgpu backend did not register (navigator.gpu missing)' };
  }
  registerFactory(pkg, found.adapter);
  patchAddN();
  // setBackend resolves false (and tfjs warns) when the device cannot be created.
  if (!(await tf.setBackend('webgpu'))) return { ok: false, adapter, reason: "tf.setBackend('webgpu') failed: the adapter refused to create a device" };
  await tf.ready();
  try {
    const probeTensor = tf.tidy(() => tf.matMul(tf.ones([2, 3]), tf.ones([3, 2])));
    const values = await probeTensor.data();
    probeTensor.dispose();
    if (values.length !== 4 || values.some((v) => v !== 3)) throw new Error(`2x3 @ 3x2 of ones gave [${Array.from(values).join(', ')}]`);
    if (validationErrors > 0) throw new Error(`${validationErrors} WebGPU validation error(s)`);
  } catch (err) {
    return { ok: false, adapter, reason: `webgpu smoke test failed: ${(err as Error).message}` };
  }
  return { ok: true, name: 'webgpu', device: describeAdapter(adapter), adapter };
}

/** Memory in use as TensorFlow.js reports it (`tf.memory()`), for GetServerInfo and metrics. */
export interface DeviceMemory {
  /** The active tfjs backend. */
  backend: string;
  numTensors: number;
  numDataBuffers: number;
  /** Bytes of all live tensors (every backend). */
  numBytes: number;
  /** webgpu only: bytes of GPU buffers holding live tensors. */
  numBytesInGPU?: number;
  /** webgpu only: bytes of GPU buffers allocated, live or pooled for reuse. */
  numBytesAllocatedInGPU?: number;
  /** True when tfjs cannot count exactly (see `reasons`). */
  unreliable: boolean;
}

/** A snapshot of `tf.memory()` on the active backend, with the backend-specific fields named. */
export function deviceMemory(): DeviceMemory {
  // tf.memory() before any backend is chosen would initialise one: report nothing instead.
  if (!tf.getBackend()) return { backend: '', numTensors: 0, numDataBuffers: 0, numBytes: 0, unreliable: false };
  const m = tf.memory() as tf.MemoryInfo & { numBytesInGPU?: number; numBytesAllocatedInGPU?: number };
  const out: DeviceMemory = {
    backend: tf.getBackend() ?? '',
    numTensors: m.numTensors,
    numDataBuffers: m.numDataBuffers,
    numBytes: m.numBytes,
    unreliable: !!m.unreliable,
  };
  if (typeof m.numBytesInGPU === 'number') out.numBytesInGPU = m.numBytesInGPU;
  if (typeof m.numBytesAllocatedInGPU === 'number') out.numBytesAllocatedInGPU = m.numBytesAllocatedInGPU;
  return out;
}
