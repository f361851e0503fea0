/**
 * Dawn's Node bindings (npm `webgpu`, a prebuilt dawn.node) and the adapter
 * they find over Vulkan, without TensorFlow.js: what webgpu-backend.ts builds
 * on, and what the start-up probe (webgpu-probe.ts) runs in a child process.
 */

/** The subset of GPUAdapterInfo that gentune reads. */
export interface WebGpuAdapterInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** True for software adapters (lavapipe/llvmpipe, SwiftShader, WARP). */
  software: boolean;
}

// Minimal structural types for the parts of WebGPU used here (the project
// compiles with `types: ["node"]`, without the DOM / @webgpu/types globals).
export type RawAdapterInfo = Partial<Record<'vendor' | 'architecture' | 'device' | 'description', string>> & { isFallbackAdapter?: boolean };
export interface GpuDeviceLike {
  limits: Record<string, number>;
  lost: Promise<{ reason: string; message: string }>;
  addEventListener(type: 'uncapturederror', listener: (event: { error: { message: string } }) => void): void;
}
export interface GpuAdapterLike {
  info?: RawAdapterInfo;
  isFallbackAdapter?: boolean;
  requestAdapterInfo?: () => Promise<RawAdapterInfo>;
  features: { has(name: string): boolean };
  limits: Record<string, number>;
  requestDevice(descriptor: { requiredFeatures: string[]; requiredLimits: Record<string, number> }): Promise<GpuDeviceLike>;
}
export interface GpuLike {
  requestAdapter(options?: { powerPreference?: 'low-power' | 'high-performance' }): Promise<GpuAdapterLike | null>;
}
export interface DawnModule {
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

/** Why `auto` passes over a software adapter, for the log. */
export function softwareOnlyReason(info: WebGpuAdapterInfo): string {
  return `only a software adapter (${describeAdapter(info)}); --backend webgpu (GENTUNE_BACKEND=webgpu) uses it anyway`;
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

/** GPUAdapterInfo: the `info` attribute, or the older `requestAdapterInfo()`. */
export async function rawAdapterInfo(adapter: GpuAdapterLike): Promise<RawAdapterInfo | undefined> {
  return adapter.info ?? (adapter.requestAdapterInfo ? await adapter.requestAdapterInfo() : undefined);
}

/** The adapter's info as gentune reads it, `software` decided. */
export async function adapterInfo(adapter: GpuAdapterLike): Promise<WebGpuAdapterInfo> {
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
export async function probeWebGpuAdapter(dawnOptions: string[] = []): Promise<{ adapter?: WebGpuAdapterInfo; reason?: string }> {
  const r = await requestAdapter(dawnOptions);
  return r.adapter ? { adapter: await adapterInfo(r.adapter) } : { reason: r.reason };
}

/** Loads Dawn and asks it for the high-performance adapter; undefined (with the reason) when there is none. */
export async function requestAdapter(dawnOptions: string[]): Promise<{ adapter?: GpuAdapterLike; reason?: string }> {
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
