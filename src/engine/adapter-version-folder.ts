/**
 * Reads what the store lists of one version folder (`<name>/<version>/`):
 * adapter_config.json, the weights' size and gentune.json, after checking
 * the folder loads. A handful of small reads, done synchronously: each
 * await would wait behind a decode step of the busy event loop, and a new
 * version must become visible within milliseconds, not steps.
 */
import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import type { FinalMetrics } from './engine-api.js';
import { ADAPTER_CONFIG_FILE, checkAdapter, LAST_LAYERS_PEFT_TYPE } from '../model/checkpoint/peft-adapter.js';
import type { GptConfig } from '../model/gpt-config.js';
import { assertRealDir, clientReason, readTextNoFollowSync } from './store-path.js';

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
  /**
   * Why the version cannot be loaded (a client may read it: no server
   * path), e.g. "adapter_model.safetensors: tensor `…` has shape [4,16]:
   * rank 4, but adapter_config.json says r=8"; undefined when it loads.
   */
  broken?: string;
  /** The producing job's final metrics, as its `succeeded` event reports them (absent if imported, or stored by an older gentune). */
  jobMetrics?: FinalMetrics;
}

/** gentune's own record in a version folder: when it was made and by which job. */
export const META_FILE = 'gentune.json';

/**
 * Reads and checks a version folder as loading it would (checkAdapter: every
 * field of adapter_config.json, every tensor's name, dtype and shape against
 * the base model, the weights whole), plus gentune.json when present, without
 * following a symbolic link anywhere. A version that fails is returned with
 * `broken` set to the reason (no server path in it) and whatever of its
 * settings could be read; it is listed so, and never served.
 */
export function readVersion(dir: string, name: string, version: number, base: GptConfig): StoredAdapterVersion {
  let raw: Record<string, unknown> = {};
  let sizeBytes = 0;
  let mtimeMs = 0;
  let meta: { createdAtMs?: number; jobId?: string; jobMetrics?: FinalMetrics } = {};
  let broken: string | undefined;
  try {
    assertRealDir(dir);
    mtimeMs = lstatSync(dir).mtimeMs;
    try {
      raw = JSON.parse(readTextNoFollowSync(join(dir, ADAPTER_CONFIG_FILE))) as Record<string, unknown>;
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) raw = {};
    } catch {
      // checkAdapter says what is wrong with it.
    }
    const weights = checkAdapter(dir, base, { noFollow: true });
    sizeBytes = weights.sizeBytes;
    mtimeMs = weights.mtimeMs;
    meta = readMeta(join(dir, META_FILE));
  } catch (err) {
    broken = clientReason(err, dir);
  }
  const lastLayers = raw.peft_type === LAST_LAYERS_PEFT_TYPE;
  const targets = raw.target_modules ?? ['c_attn'];
  const num = (v: unknown, fallback: number) => (typeof v === 'number' && Number.isFinite(v) ? v : fallback);
  return {
    name,
    version,
    baseModel: typeof raw.base_model_name_or_path === 'string' ? raw.base_model_name_or_path : '',
    method: lastLayers ? 'last_layers' : 'lora',
    r: lastLayers ? 0 : num(raw.r, 8),
    loraAlpha: lastLayers ? 0 : num(raw.lora_alpha, 8),
    targetModules: lastLayers ? [] : Array.isArray(targets) ? targets.map(String) : [String(targets)],
    sizeBytes,
    createdAtMs: Number.isFinite(meta.createdAtMs) ? meta.createdAtMs! : mtimeMs,
    jobId: typeof meta.jobId === 'string' ? meta.jobId : undefined,
    ...(broken === undefined ? {} : { broken }),
    ...(typeof meta.jobMetrics === 'object' && meta.jobMetrics !== null && Number.isInteger(meta.jobMetrics.steps) ? { jobMetrics: meta.jobMetrics } : {}),
  };
}

/** gentune.json: absent (an adapter copied in by hand) is fine; one that does not read or parse makes the version broken. */
function readMeta(file: string): { createdAtMs?: number; jobId?: string; jobMetrics?: FinalMetrics } {
  let text: string;
  try {
    text = readTextNoFollowSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw err;
  }
  let meta: unknown;
  try {
    meta = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file}: not valid JSON (${(err as Error).message})`, { cause: err });
  }
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) throw new Error(`${file}: expected a JSON object`);
  const { createdAtMs, jobId, jobMetrics } = meta as Record<string, unknown>;
  if (createdAtMs !== undefined && !(typeof createdAtMs === 'number' && Number.isFinite(createdAtMs))) {
    throw new Error(`${file}: \`createdAtMs\` must be a number, got ${JSON.stringify(createdAtMs)}`);
  }
  if (jobId !== undefined && typeof jobId !== 'string') throw new Error(`${file}: \`jobId\` must be a string, got ${JSON.stringify(jobId)}`);
  // The producing job's metrics are informational: a malformed value is dropped, not a broken version.
  return { createdAtMs, jobId, jobMetrics: jobMetrics as FinalMetrics | undefined };
}
