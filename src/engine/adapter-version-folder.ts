/**
 * Reads what the store lists of one version folder (`<name>/<version>/`):
 * adapter_config.json, the weights' size and gentune.json, after checking
 * the weights are whole. A handful of small reads, done synchronously: each
 * await would wait behind a decode step of the busy event loop, and a new
 * version must become visible within milliseconds, not steps.
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import type { FinalMetrics } from './engine-api.js';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, LAST_LAYERS_PEFT_TYPE } from '../model/checkpoint/peft-adapter.js';

/** What the store knows of one stored version (residency is the registry's business). */
export interface StoredAdapterVersion {
  name: string;
  version: number;
  baseModel: string;
  method: 'lora' | 'last_layers';
  /** 0 for last_layers. */
  r: number;
  /** 0 for last_layers. */
  loraAlpha: number;
  /** PEFT's target_modules; empty for last_layers. */
  targetModules: string[];
  /** Bytes of the weights file. */
  sizeBytes: number;
  createdAtMs: number;
  jobId?: string;
  /** The producing job's final metrics, as its `succeeded` event reports them (absent if imported, or stored by an older gentune). */
  jobMetrics?: FinalMetrics;
}

/** gentune's own record in a version folder: when it was made and by which job. */
export const META_FILE = 'gentune.json';

/**
 * The size of a safetensors file, after checking it is whole: its header
 * parses and the file is exactly as long as the header says (a writer still
 * copying it in place is not done). @throws otherwise.
 */
function completeSize(path: string): { size: number; mtimeMs: number } {
  const fd = openSync(path, 'r');
  try {
    const { size, mtimeMs } = fstatSync(fd);
    const head = Buffer.alloc(8);
    if (size < 8 || readSync(fd, head, 0, 8, 0) < 8) throw new Error(`${path}: incomplete (${size} bytes)`);
    const n = Number(head.readBigUInt64LE(0));
    if (n > size - 8) throw new Error(`${path}: incomplete header`);
    const json = Buffer.alloc(n);
    if (readSync(fd, json, 0, n, 8) < n) throw new Error(`${path}: incomplete header`);
    let end = 0;
    for (const [key, entry] of Object.entries(JSON.parse(json.toString('utf8')) as Record<string, { data_offsets?: unknown[] }>)) {
      if (key !== '__metadata__' && Array.isArray(entry.data_offsets)) end = Math.max(end, Number(entry.data_offsets[1]));
    }
    if (size !== 8 + n + end) throw new Error(`${path}: ${size} bytes, expected ${8 + n + end}`);
    return { size, mtimeMs };
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads what ListAdapters shows of a version folder: adapter_config.json, the
 * weights' size and gentune.json. A gentune.json that does not parse is
 * reported to `badMeta` and ignored (the version is listed as if imported by hand).
 * @throws when adapter_config.json does not parse or the weights are not whole.
 */
export function readVersion(
  dir: string,
  name: string,
  version: number,
  badMeta: (file: string, err: unknown) => void = () => undefined,
): StoredAdapterVersion {
  const configFile = join(dir, ADAPTER_CONFIG_FILE);
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(readFileSync(configFile, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`${configFile}: ${(err as Error).message}`, { cause: err });
  }
  if (typeof config !== 'object' || config === null) throw new Error(`${configFile}: not a JSON object`);
  const weights = completeSize(join(dir, ADAPTER_WEIGHTS_FILE));
  let meta: { createdAtMs?: number; jobId?: string; jobMetrics?: FinalMetrics } = {};
  const metaFile = join(dir, META_FILE);
  try {
    meta = JSON.parse(readFileSync(metaFile, 'utf8')) as typeof meta;
    if (typeof meta !== 'object' || meta === null) throw new Error('not a JSON object');
  } catch (err) {
    // Imported by hand: no gentune.json, which is fine; one that does not parse is reported.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') badMeta(metaFile, err);
    meta = {};
  }
  const lastLayers = config.peft_type === LAST_LAYERS_PEFT_TYPE;
  const targets = config.target_modules ?? ['c_attn'];
  return {
    name,
    version,
    baseModel: typeof config.base_model_name_or_path === 'string' ? config.base_model_name_or_path : '',
    method: lastLayers ? 'last_layers' : 'lora',
    r: lastLayers ? 0 : Number(config.r ?? 8),
    loraAlpha: lastLayers ? 0 : Number(config.lora_alpha ?? 8),
    targetModules: lastLayers ? [] : Array.isArray(targets) ? targets.map(String) : [String(targets)],
    sizeBytes: weights.size,
    createdAtMs: Number.isFinite(meta.createdAtMs) ? meta.createdAtMs! : weights.mtimeMs,
    jobId: typeof meta.jobId === 'string' ? meta.jobId : undefined,
    ...(typeof meta.jobMetrics === 'object' && meta.jobMetrics !== null && Number.isInteger(meta.jobMetrics.steps) ? { jobMetrics: meta.jobMetrics } : {}),
  };
}
