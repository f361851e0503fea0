/**
 * Runtime metrics: TensorFlow.js memory (the engine's tf.memory(), read at
 * scrape time: a tensor count that only grows is a leak), device memory in
 * use and allocated, which backend, device and model run, and the process
 * itself (prom-client's default metrics, prefixed).
 * TensorFlow.js itself is not imported here: the engine that loaded it hands
 * over tf.memory(), so the metrics can start before the model loads.
 */
import { collectDefaultMetrics, Gauge, type Registry } from 'prom-client';

type Memory = {
  numTensors: number;
  numDataBuffers: number;
  numBytes: number;
  /** webgpu only. */
  numBytesInGPU?: number;
  /** webgpu only. */
  numBytesAllocatedInGPU?: number;
  /** Host backends: paged KV cache memory held, and in pages in use. */
  kvCacheBytes?: number;
  kvCacheBytesInUse?: number;
};
const NO_MEMORY: Memory = { numTensors: 0, numDataBuffers: 0, numBytes: 0 };

/**
 * prom-client exports these three as gauges named `..._total`, which promtool
 * rejects ("non-counter metrics should not have _total suffix"); each is the
 * sum over `type` of the gauge of the same name without `_total`.
 */
const DROPPED_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

export class RuntimeMetrics {
  private readonly backendInfo: Gauge<'backend' | 'device'>;
  private readonly buildInfo: Gauge<'version'>;
  private readonly modelInfo: Gauge<'model'>;
  private memory: () => Memory = () => NO_MEMORY;

  constructor(registry: Registry, prefix: string, processMetrics: boolean) {
    const registers = [registry];
    const tensors: Gauge = new Gauge({
      name: `${prefix}tfjs_tensors`,
      help: 'TensorFlow.js tensors alive (tf.memory().numTensors).',
      registers,
      collect: () => tensors.set(this.memory().numTensors),
    });
    const buffers: Gauge = new Gauge({
      name: `${prefix}tfjs_data_buffers`,
      help: 'TensorFlow.js data buffers alive (tf.memory().numDataBuffers).',
      registers,
      collect: () => buffers.set(this.memory().numDataBuffers),
    });
    const bytes: Gauge = new Gauge({
      name: `${prefix}tfjs_memory_bytes`,
      help: 'Bytes held by TensorFlow.js tensors on the backend (tf.memory().numBytes).',
      registers,
      collect: () => bytes.set(this.memory().numBytes),
    });
    const device: Gauge<'kind'> = new Gauge({
      name: `${prefix}device_memory_bytes`,
      help:
        'Device memory held by TensorFlow.js, in bytes: kind="in_use" is live tensors (GPU buffers on webgpu, ' +
        'else tf.memory().numBytes); kind="allocated" (webgpu only) adds buffers pooled for reuse.',
      labelNames: ['kind'],
      registers,
      collect: () => {
        const m = this.memory();
        device.set({ kind: 'in_use' }, m.numBytesInGPU ?? m.numBytes);
        if (m.numBytesAllocatedInGPU !== undefined) device.set({ kind: 'allocated' }, m.numBytesAllocatedInGPU);
        else device.remove({ kind: 'allocated' });
      },
    });
    const kvCache: Gauge<'kind'> = new Gauge({
      name: `${prefix}kv_cache_bytes`,
      help:
        'Paged KV cache memory (host backends: wasm, cpu), in bytes: kind="in_use" is pages held by running ' +
        'sequences, kind="allocated" the memory reserved for them (it grows and is reused, never returned).',
      labelNames: ['kind'],
      registers,
      collect: () => {
        const m = this.memory();
        kvCache.set({ kind: 'in_use' }, m.kvCacheBytesInUse ?? 0);
        kvCache.set({ kind: 'allocated' }, m.kvCacheBytes ?? 0);
      },
    });
    this.backendInfo = new Gauge({ name: `${prefix}backend_info`, help: 'The TensorFlow.js backend in use (always 1).', labelNames: ['backend', 'device'], registers });
    this.buildInfo = new Gauge({ name: `${prefix}build_info`, help: 'gentune version (always 1).', labelNames: ['version'], registers });
    this.modelInfo = new Gauge({ name: `${prefix}model_info`, help: 'The base model served (always 1).', labelNames: ['model'], registers });
    if (processMetrics) {
      collectDefaultMetrics({ register: registry, prefix });
      for (const name of DROPPED_DEFAULTS) registry.removeSingleMetric(`${prefix}${name}`);
    }
  }

  /** Records what the engine runs on, once it is up. */
  bind(info: { backend: { name: string; device: string }; model: string; version: string; memory(): Memory }): void {
    this.memory = info.memory;
    this.backendInfo.set({ backend: info.backend.name, device: info.backend.device }, 1);
    this.buildInfo.set({ version: info.version }, 1);
    this.modelInfo.set({ model: info.model }, 1);
  }
}
