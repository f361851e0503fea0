/**
 * Adapters on disk: `<dataDir>/adapters/<name>/<version>/` in PEFT's layout
 * (adapter_config.json + adapter_model.safetensors, see
 * src/model/checkpoint/peft-adapter.ts) plus `gentune.json` (when it was made
 * and by which job). A version is written into a hidden temporary folder and
 * renamed into place, so a version folder is always complete; versions are
 * 1, 2, ... per name and never reused while the name has any version left.
 * A PEFT folder copied in by hand (no gentune.json) is listed too.
 */
import { readFile, readdir, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { FailedPrecondition } from '../common/errors.js';
import type { Adapter } from '../model/adapter.js';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, LAST_LAYERS_PEFT_TYPE, loadAdapter, saveAdapter } from '../model/checkpoint/peft-adapter.js';
import type { GptConfig } from '../model/gpt-config.js';
import { listEntries, publishDir, removeDir, syncDir, writeJsonSynced } from './store-files.js';

const META_FILE = 'gentune.json';

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
}

/** The adapter folders of one data directory. */
export class AdapterStore {
  /** name -> version -> info. */
  private readonly adapters = new Map<string, Map<number, StoredAdapterVersion>>();
  /** Writes run one at a time, so two publishes of a name never pick the same version. */
  private writing: Promise<unknown> = Promise.resolve();

  private constructor(
    /** `<dataDir>/adapters`. */
    readonly dir: string,
    private readonly base: GptConfig,
    private readonly log: Logger,
  ) {}

  /** Lists every version on disk; unreadable ones are logged and skipped. */
  static async open(dir: string, base: GptConfig, log: Logger): Promise<AdapterStore> {
    const store = new AdapterStore(dir, base, log);
    for (const name of await listEntries(dir)) {
      for (const v of await listEntries(join(dir, name))) {
        if (!/^[1-9]\d*$/.test(v)) continue;
        try {
          store.remember(await readVersion(join(dir, name, v), name, Number(v)));
        } catch (err) {
          log.warn({ adapter: `${name}@${v}`, err }, 'skipping unreadable adapter version');
        }
      }
    }
    return store;
  }

  /** Every stored version, by name, oldest version first. */
  list(): Map<string, StoredAdapterVersion[]> {
    const out = new Map<string, StoredAdapterVersion[]>();
    for (const name of [...this.adapters.keys()].sort()) {
      const versions = [...this.adapters.get(name)!.values()].sort((a, b) => a.version - b.version);
      if (versions.length > 0) out.set(name, versions);
    }
    return out;
  }

  /** The versions of one name, oldest first (empty when unknown). */
  versions(name: string): StoredAdapterVersion[] {
    return this.list().get(name) ?? [];
  }

  /** One version, if stored. */
  get(name: string, version: number): StoredAdapterVersion | undefined {
    return this.adapters.get(name)?.get(version);
  }

  /** Writes `adapter` as the next version of `name` and returns what was stored. */
  save(name: string, adapter: Adapter, jobId?: string): Promise<StoredAdapterVersion> {
    const run = this.writing.then(async () => {
      const parent = join(this.dir, name);
      const versions = this.versions(name);
      const version = (versions.at(-1)?.version ?? 0) + 1;
      const tmp = join(parent, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
      try {
        await saveAdapter(tmp, adapter, this.base);
        await writeJsonSynced(join(tmp, META_FILE), { createdAtMs: Date.now(), jobId });
        await syncDir(tmp);
        await publishDir(tmp, join(parent, String(version)), parent);
      } catch (err) {
        await rm(tmp, { recursive: true, force: true });
        throw err;
      }
      const info = await readVersion(join(parent, String(version)), name, version);
      this.remember(info);
      this.log.info({ adapter: `${name}@${version}`, jobId, sizeBytes: info.sizeBytes }, 'adapter stored');
      return info;
    });
    this.writing = run.catch(() => undefined);
    return run;
  }

  /**
   * Uploads a stored version to the backend; the caller owns the tensors.
   * @throws FailedPrecondition when the folder does not load (the cause, which
   *   names server paths, goes to the log only).
   */
  async load(name: string, version: number): Promise<Adapter> {
    try {
      return await loadAdapter(join(this.dir, name, String(version)), this.base);
    } catch (err) {
      this.log.error({ adapter: `${name}@${version}`, err }, 'adapter does not load');
      throw new FailedPrecondition(`adapter ${JSON.stringify(`${name}@${version}`)} is stored but cannot be loaded`, { cause: err });
    }
  }

  /** Deletes one version (its folder, then the name's folder when it was the last). */
  async delete(name: string, version: number): Promise<void> {
    const versions = this.adapters.get(name);
    versions?.delete(version);
    const parent = join(this.dir, name);
    await removeDir(join(parent, String(version)), parent);
    if (versions && versions.size === 0) {
      this.adapters.delete(name);
      // Another version may be on its way in: only an empty folder goes.
      const left = await readdir(parent).catch(() => ['?']);
      if (left.length === 0) await rm(parent, { recursive: true, force: true });
    }
    this.log.info({ adapter: `${name}@${version}` }, 'adapter version deleted');
  }

  private remember(info: StoredAdapterVersion): void {
    let versions = this.adapters.get(info.name);
    if (!versions) this.adapters.set(info.name, (versions = new Map()));
    versions.set(info.version, info);
  }
}

/** Reads what ListAdapters shows of a version folder: adapter_config.json, file size and gentune.json. */
async function readVersion(dir: string, name: string, version: number): Promise<StoredAdapterVersion> {
  const config = JSON.parse(await readFile(join(dir, ADAPTER_CONFIG_FILE), 'utf8')) as Record<string, unknown>;
  const weights = await stat(join(dir, ADAPTER_WEIGHTS_FILE));
  let meta: { createdAtMs?: number; jobId?: string } = {};
  try {
    meta = JSON.parse(await readFile(join(dir, META_FILE), 'utf8')) as typeof meta;
  } catch {
    // Imported by hand: no gentune.json.
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
  };
}
