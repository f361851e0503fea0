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

/** The subset of GPUAdapterInfo that gentune reads. */
export interface WebGpuAdapterInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** True for software adapters (lavapipe/llvmpipe, SwiftShader, WARP). */
  software: boolean;
}

/** What `initWebGpu` did: the backend it set up, or why it did not. */
export type WebGpuResult =
  | { ok: true; name: 'webgpu'; device: string; adapter: WebGpuAdapterInfo }
  | { ok: false; reason: string; adapter?: WebGpuAdapterInfo };

export interface WebGpuOptions {
  /** Accept a software adapter (an explicit `--backend webgpu` does; `auto` does not). */
  allowSoftware: boolean;
  /**
   * Dawn options for `create()`, e.g. `backend=vulkan` or `adapter=NVIDIA`.
   * Default: GENTUNE_DAWN_OPTIONS split on commas, else none.
   */
  dawnOptions?: string[];
}

// Minimal structural types for the parts of WebGPU used here (the project
// compiles with `types: ["node"]`, without the DOM / @webgpu/types globals).
type RawAdapterInfo = Partial<Record<'vendor' | 'architecture' | 'device' | 'description', string>> & { isFallbackAdapter?: boolean };
interface GpuDeviceLike {
  limits: Record<string, number>;
  lost: Promise<{ reason: string; message: string }>;
  addEventListener(type: 'uncapturederror', listener: (event: { error: { message: string } }) => void): void;
}
interface GpuAdapterLike {
  info?: RawAdapterInfo;
  isFallbackAdapter?: boolean;
  requestAdapterInfo?: () => Promise<RawAdapterInfo>;
  features: { has(name: string): boolean };
  limits: Record<string, number>;
  requestDevice(descriptor: { requiredFeatures: string[]; requiredLimits: Record<string, number> }): Promise<GpuDeviceLike>;
}
interface GpuLike {
  requestAdapter(options?: { powerPreference?: 'low-power' | 'high-performance' }): Promise<GpuAdapterLike | null>;
}
interface DawnModule {
  create(options: string[]): GpuLike;
  globals: Record<string, unknown>;
}

const SOFTWARE = /llvmpipe|lavapipe|swiftshader|software|microsoft basic render|\bwarp\b/i;

/**
 * Whether an adapter is a software rasteriser rather than a GPU: the
 * fallback-adapter flag, Dawn's `architecture: "software"` for lavapipe, or a
 * known software driver named in vendor/device/description.
 */
export function isSoftwareAdapter(info: Partial<Omit<WebGpuAdapterInfo, 'software'>>, isFallbackAdapter = false): boolean {
  if (isFallbackAdapter) return true;
  return [info.vendor, info.architecture, info.device, info.description].some((s) => !!s && SOFTWARE.test(s));
}

/** One line for logs and GetServerInfo, e.g. "nvidia hopper: NVIDIA H200, WebGPU via Dawn". */
export function describeAdapter(info: WebGpuAdapterInfo): string {
  const head = [info.vendor, info.architecture].filter(Boolean).join(' ') || 'unknown adapter';
  const tail = info.description || info.device;
  const text = `${head}${tail ? `: ${tail}` : ''}`;
  return `${text}${info.software && !/software/i.test(text) ? ' (software)' : ''}, WebGPU via Dawn`;
}

let dawnGpu: GpuLike | undefined;

/** Loads dawn.node and installs WebGPU's globals and `navigator.gpu` (once per process). */
async function installDawn(dawnOptions: string[]): Promise<GpuLike> {
  if (dawnGpu) return dawnGpu;
  const pkg = 'webgpu';
  const dawn = (await import(pkg)) as DawnModule;
  // GPUBufferUsage, GPUMapMode, GPUShaderStage ... used by the tfjs kernels.
  for (const [key, value] of Object.entries(dawn.globals)) {
    if (!(key in globalThis)) (globalThis as Record<string, unknown>)[key] = value;
  }
  const gpu = dawn.create(dawnOptions);
  const g = globalThis as { navigator?: { gpu?: unknown } };
  if (g.navigator === undefined) {
    // Node 20 has no global navigator.
    Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
  } else if (!g.navigator.gpu) {
    // Node 21+ has one (without `gpu`).
    Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true, writable: true });
  }
  dawnGpu = gpu;
  return gpu;
}

function dawnOptionsFromEnv(): string[] {
  const raw = process.env.GENTUNE_DAWN_OPTIONS ?? '';
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

async function rawAdapterInfo(adapter: GpuAdapterLike): Promise<RawAdapterInfo | undefined> {
  return adapter.info ?? (adapter.requestAdapterInfo ? await adapter.requestAdapterInfo() : undefined);
}

async function adapterInfo(adapter: GpuAdapterLike): Promise<WebGpuAdapterInfo> {
  const raw = (await rawAdapterInfo(adapter)) ?? {};
  const fallback = adapter.isFallbackAdapter ?? adapter.info?.isFallbackAdapter ?? false;
  const info = {
    vendor: raw.vendor ?? '',
    architecture: raw.architecture ?? '',
    device: raw.device ?? '',
    description: raw.description ?? '',
  };
  return { ...info, software: isSoftwareAdapter(info, fallback) };
}

/**
 * Finds the adapter Dawn would use, without touching TensorFlow.js: for
 * `gentune` start-up checks and scripts/gpu-check.sh. Undefined (with the
 * reason) when the package or a Vulkan driver is missing.
 */
export async function probeWebGpuAdapter(dawnOptions = dawnOptionsFromEnv()): Promise<{ adapter?: WebGpuAdapterInfo; reason?: string }> {
  const r = await requestAdapter(dawnOptions);
  return r.adapter ? { adapter: await adapterInfo(r.adapter) } : { reason: r.reason };
}

async function requestAdapter(dawnOptions: string[]): Promise<{ adapter?: GpuAdapterLike; reason?: string }> {
  let gpu: GpuLike;
  try {
    gpu = await installDawn(dawnOptions);
  } catch (err) {
    return { reason: `the webgpu package (Dawn) could not be loaded: ${(err as Error).message}` };
  }
  let adapter: GpuAdapterLike | null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (err) {
    // e.g. GENTUNE_DAWN_OPTIONS=adapter=<name> matching none: Dawn lists those it has.
    return { reason: `Dawn could not pick an adapter: ${(err as Error).message.replace(/\s*\n\s*/g, ' ')}` };
  }
  if (!adapter) return { reason: 'Dawn found no WebGPU adapter (no Vulkan driver / ICD: install libvulkan1 and a driver, see deploy/docker/GPU.md)' };
  return { adapter };
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
  const found = await requestAdapter(options.dawnOptions ?? dawnOptionsFromEnv());
  if (!found.adapter) return { ok: false, reason: found.reason ?? 'no adapter' };
  const adapter = await adapterInfo(found.adapter);
  if (adapter.software && !options.allowSoftware) {
    return { ok: false, adapter, reason: `only a software adapter (${describeAdapter(adapter)}); --backend webgpu (GENTUNE_BACKEND=webgpu) uses it anyway` };
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
