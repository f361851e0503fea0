import * as tf from '@tensorflow/tfjs';
import { initWebGpu, type WebGpuAdapterInfo } from './webgpu-backend.js';
import { probeWebGpuInChild, type WebGpuProbe } from './webgpu-probe.js';

/** Backends gentune can run on, in the order `auto` tries them. */
export type BackendName = 'auto' | 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';

export interface BackendOptions {
  /** wasm only: threads for XNNPACK. 1 (the default) keeps wasm single-threaded. */
  wasmThreads?: number;
  /** webgpu only: Dawn `create()` options such as `backend=vulkan` (config `dawnOptions`). Default none. */
  dawnOptions?: string[];
  /** Called with one line per backend tried (and `auto`'s WebGPU probe, with its fields), for the start-up log. */
  log?: (message: string, fields?: Record<string, unknown>) => void;
}

/** What was chosen: the tfjs backend name and a human description of the device. */
export interface BackendInfo {
  name: string;
  device: string;
  /** webgpu only: the adapter it runs on (GPUAdapterInfo). */
  gpuAdapter?: WebGpuAdapterInfo;
}

let active: BackendInfo | undefined;

/** `tf.memory()` of the active backend (GPU bytes on webgpu), for GetServerInfo and metrics. */
export { deviceMemory, type DeviceMemory } from './webgpu-backend.js';

/** The backend chosen by `initBackend`, if any. */
export function activeBackend(): BackendInfo | undefined {
  return active;
}

/**
 * Chooses and initialises the TensorFlow.js backend. `auto` tries
 * tfjs-node-gpu, tfjs-node, then webgpu (hardware adapters only), then wasm
 * (SIMD), then the pure-JS cpu backend. `auto` asks Dawn for an adapter in a
 * child process first (webgpu-probe.ts), started at once so that it overlaps
 * the tfjs-node attempt, and loads Dawn here only for a hardware adapter.
 * Idempotent: a second call returns the first choice.
 */
export async function initBackend(requested: BackendName = 'auto', options: BackendOptions = {}): Promise<BackendInfo> {
  if (active) return active;
  const log = options.log ?? (() => {});
  const order: Exclude<BackendName, 'auto'>[] =
    requested === 'auto' ? ['tensorflow', 'webgpu', 'wasm', 'cpu'] : [requested];
  const webgpuProbe = requested === 'auto' ? probeWebGpuInChild({ dawnOptions: options.dawnOptions }) : undefined;
  for (const name of order) {
    try {
      const info = await tryBackend(name, { ...options, log }, webgpuProbe);
      if (info) {
        active = info;
        log(`backend ${info.name} (${info.device})`);
        return info;
      }
      log(`backend ${name} unavailable`);
    } catch (err) {
      log(`backend ${name} failed: ${(err as Error).message}`);
    }
  }
  throw new Error(`no TensorFlow.js backend could be initialised (asked for ${requested})`);
}

/** `webgpuProbe` is set under `auto` only. */
async function tryBackend(
  name: Exclude<BackendName, 'auto'>,
  options: BackendOptions & Required<Pick<BackendOptions, 'log'>>,
  webgpuProbe?: Promise<WebGpuProbe>,
): Promise<BackendInfo | undefined> {
  switch (name) {
    case 'tensorflow': {
      // Either package registers the `tensorflow` backend on import.
      for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
        try {
          await import(pkg);
        } catch {
          continue;
        }
        if (await tf.setBackend('tensorflow')) {
          await tf.ready();
          return { name: 'tensorflow', device: pkg.endsWith('gpu') ? 'libtensorflow (CUDA)' : 'libtensorflow (CPU)' };
        }
      }
      return undefined;
    }
    case 'wasm': {
      const wasm = await import('@tensorflow/tfjs-backend-wasm');
      const threads = options.wasmThreads ?? 1;
      // tfjs disables wasm threads under Node; enableWasmThreads opts in and makes
      // the pthread workers loadable there (see wasm-threads.ts).
      const finish = threads > 1 ? (await import('./wasm-threads.js')).enableWasmThreads(threads) : undefined;
      try {
        if (!(await tf.setBackend('wasm'))) return undefined;
        await tf.ready();
      } finally {
        finish?.();
      }
      const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
      return { name: 'wasm', device: `wasm${simd ? ' simd' : ''}, ${wasm.getThreadsCount()} thread(s)` };
    }
    case 'webgpu': {
      // Dawn over Vulkan (see webgpu-backend.ts). `auto` takes it only on a
      // hardware adapter, which the probe found without loading Dawn here; an
      // explicit `webgpu` accepts lavapipe too.
      if (webgpuProbe) {
        const probe = await webgpuProbe;
        options.log('webgpu probe', { ...probe });
        if (!probe.available) return undefined;
      }
      const r = await initWebGpu({ allowSoftware: !webgpuProbe, dawnOptions: options.dawnOptions });
      if (r.ok) return { name: r.name, device: r.device, gpuAdapter: { ...r.adapter } };
      options.log(`backend webgpu: ${r.reason}`);
      return undefined;
    }
    case 'cpu': {
      if (!(await tf.setBackend('cpu'))) return undefined;
      await tf.ready();
      return { name: 'cpu', device: 'pure JavaScript' };
    }
  }
}
