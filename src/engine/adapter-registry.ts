/**
 * Which adapters are resident on the backend. Requests resolve `name[@version]`
 * (latest by default) and take a lease; the first lease loads the version from
 * the store, later ones share its tensors. Unpinned versions that no request
 * holds are evicted, least recently used first, when resident bytes pass the
 * budget. Deleting or unloading a version in use only retires it: requests in
 * flight finish with the tensors they hold, which are freed with the last lease.
 */
import type { Logger } from 'pino';
import { NotFound } from '../common/errors.js';
import { type Adapter, disposeAdapter } from '../model/adapter.js';
import { loraBytes } from '../model/lora.js';
import type { AdapterStore, StoredAdapterVersion } from './adapter-store.js';
import type { AdapterInfo, AdapterRef, AdapterVersionInfo } from './engine-api.js';
import { type EngineMetrics, noMetrics } from './engine-metrics.js';

/** A request's hold on a resident adapter; call `release` exactly once. */
export interface AdapterLease {
  /** "name@version". */
  label: string;
  /** Also the grouping key of batch rows using it. */
  adapter: Adapter;
  release(): void;
}

interface Resident {
  label: string;
  /** Set once loaded. */
  adapter?: Adapter;
  loading?: Promise<Adapter>;
  bytes: number;
  /** Leases held. */
  refs: number;
  pinned: boolean;
  /** Deleted or unloaded while held: freed when the last lease goes. */
  retired: boolean;
}

/** Default budget for resident unpinned adapters, in bytes. */
export const DEFAULT_ADAPTER_BUDGET_BYTES = 512 * 1024 * 1024;

/** Resolves, loads, pins and frees adapters. */
export class AdapterRegistry {
  private readonly resident = new Map<string, Resident>();
  private readonly lastUsed = new Map<string, number>();

  constructor(
    private readonly store: AdapterStore,
    private readonly log: Logger,
    /** Resident bytes above which idle, unpinned versions are evicted. */
    private readonly budgetBytes = DEFAULT_ADAPTER_BUDGET_BYTES,
    private readonly metrics: EngineMetrics = noMetrics,
  ) {}

  /** The stored version `ref` names (latest when no version). @throws NotFound naming `field`. */
  resolve(ref: AdapterRef, field = 'adapter'): StoredAdapterVersion {
    const versions = this.store.versions(ref.name);
    const found = ref.version === undefined ? versions.at(-1) : versions.find((v) => v.version === ref.version);
    if (!found) {
      const what = ref.version === undefined ? ref.name : `${ref.name}@${ref.version}`;
      throw new NotFound(`\`${field}\` ${JSON.stringify(what)}: no such adapter${versions.length > 0 && ref.version !== undefined ? ` version (latest is ${versions.at(-1)!.version})` : ''}`);
    }
    return found;
  }

  /** Loads `ref` if needed and holds it until `release()`. */
  async acquire(ref: AdapterRef, field = 'adapter'): Promise<AdapterLease> {
    const v = this.resolve(ref, field);
    const label = `${v.name}@${v.version}`;
    const entry = this.entry(label, v);
    entry.refs++;
    try {
      const adapter = entry.adapter ?? (await entry.loading!);
      this.lastUsed.set(label, Date.now());
      let released = false;
      return {
        label,
        adapter,
        release: () => {
          if (released) return;
          released = true;
          this.release(label, entry);
        },
      };
    } catch (err) {
      entry.refs--;
      throw err;
    }
  }

  /** Makes a version resident (and pinned, if asked: never evicted); idempotent. */
  async load(ref: AdapterRef, pin: boolean): Promise<AdapterInfo> {
    const lease = await this.acquire(ref);
    const entry = this.resident.get(lease.label)!;
    if (pin) entry.pinned = true;
    lease.release();
    return this.info(ref.name);
  }

  /** Unpins and frees a version (every version when ref.version is undefined); idempotent. */
  unload(ref: AdapterRef): AdapterInfo {
    const labels = ref.version === undefined
      ? this.store.versions(ref.name).map((v) => `${v.name}@${v.version}`)
      : [`${this.resolve(ref).name}@${ref.version}`];
    if (labels.length === 0) this.resolve(ref);
    for (const label of labels) this.retire(label);
    return this.info(ref.name);
  }

  /** Deletes a version, or every version when ref.version is undefined. */
  async delete(ref: AdapterRef): Promise<void> {
    const versions = ref.version === undefined ? this.store.versions(ref.name) : [this.resolve(ref)];
    if (versions.length === 0) this.resolve(ref);
    for (const v of versions) {
      const label = `${v.name}@${v.version}`;
      this.retire(label);
      this.lastUsed.delete(label);
      await this.store.delete(v.name, v.version);
    }
  }

  /**
   * Stores a freshly trained adapter as the next version of `name` and keeps
   * it resident (the registry now owns its tensors). New requests see it at once.
   */
  async publish(name: string, adapter: Adapter, jobId?: string): Promise<StoredAdapterVersion> {
    let stored: StoredAdapterVersion;
    try {
      stored = await this.store.save(name, adapter, jobId);
    } catch (err) {
      disposeAdapter(adapter);
      throw err;
    }
    const label = `${name}@${stored.version}`;
    this.resident.set(label, { label, adapter, bytes: adapterBytes(adapter), refs: 0, pinned: false, retired: false });
    this.evict();
    return stored;
  }

  /** Every adapter, sorted by name. */
  list(): AdapterInfo[] {
    return [...this.store.list().keys()].map((name) => this.info(name));
  }

  /** One adapter with all its versions and their residency. @throws NotFound naming `adapter`. */
  info(name: string): AdapterInfo {
    const versions = this.store.versions(name);
    if (versions.length === 0) throw new NotFound(`\`adapter\` ${JSON.stringify(name)}: no such adapter`);
    return { name, latestVersion: versions.at(-1)!.version, versions: versions.map((v) => this.versionInfo(v)) };
  }

  /** Versions whose tensors are resident (loaded, not still loading). */
  get residentCount(): number {
    let n = 0;
    for (const e of this.resident.values()) if (e.adapter) n++;
    return n;
  }

  /** Bytes of resident adapters. */
  get residentBytes(): number {
    let n = 0;
    for (const e of this.resident.values()) n += e.bytes;
    return n;
  }

  /** Frees every resident adapter no request holds; held ones go with their last lease. */
  dispose(): void {
    for (const label of [...this.resident.keys()]) this.retire(label);
  }

  private versionInfo(v: StoredAdapterVersion): AdapterVersionInfo {
    const label = `${v.name}@${v.version}`;
    const e = this.resident.get(label);
    const { name: _name, ...rest } = v;
    return {
      ...rest,
      residency: !e?.adapter ? 'stored' : e.pinned ? 'pinned' : 'loaded',
      lastUsedAtMs: this.lastUsed.get(label),
    };
  }

  /** The resident entry of a version, starting its load when there is none. */
  private entry(label: string, v: StoredAdapterVersion): Resident {
    const existing = this.resident.get(label);
    if (existing) return existing;
    const entry: Resident = { label, bytes: 0, refs: 0, pinned: false, retired: false };
    const startedMs = performance.now();
    entry.loading = this.store.load(v.name, v.version).then(
      (adapter) => {
        this.metrics.onAdapterLoad(performance.now() - startedMs, true);
        entry.loading = undefined;
        if (entry.retired && entry.refs === 0) {
          disposeAdapter(adapter);
          return adapter;
        }
        entry.adapter = adapter;
        entry.bytes = adapterBytes(adapter);
        this.log.info({ adapter: label, bytes: entry.bytes }, 'adapter loaded');
        this.evict();
        return adapter;
      },
      (err: unknown) => {
        this.metrics.onAdapterLoad(performance.now() - startedMs, false);
        if (this.resident.get(label) === entry) this.resident.delete(label);
        throw err;
      },
    );
    this.resident.set(label, entry);
    return entry;
  }

  private release(label: string, entry: Resident): void {
    entry.refs--;
    if (entry.refs > 0) return;
    if (entry.retired) {
      if (entry.adapter) disposeAdapter(entry.adapter);
      entry.adapter = undefined;
      return;
    }
    this.evict();
  }

  /** Drops a version from the resident set; freed now, or by its last lease. */
  private retire(label: string): void {
    const entry = this.resident.get(label);
    if (!entry) return;
    this.resident.delete(label);
    entry.retired = true;
    entry.pinned = false;
    if (entry.refs === 0 && entry.adapter) {
      disposeAdapter(entry.adapter);
      entry.adapter = undefined;
      this.log.info({ adapter: label }, 'adapter unloaded');
    }
  }

  /** Evicts idle unpinned versions, least recently used first, while over budget. */
  private evict(): void {
    let total = this.residentBytes;
    if (total <= this.budgetBytes) return;
    const idle = [...this.resident.values()]
      .filter((e) => e.adapter && e.refs === 0 && !e.pinned)
      .sort((a, b) => (this.lastUsed.get(a.label) ?? 0) - (this.lastUsed.get(b.label) ?? 0));
    for (const e of idle) {
      if (total <= this.budgetBytes) break;
      total -= e.bytes;
      this.retire(e.label);
      this.metrics.onAdapterEvicted();
    }
  }
}

/** Bytes an adapter's tensors occupy (float32). */
export function adapterBytes(adapter: Adapter): number {
  if (adapter.kind === 'lora') return loraBytes(adapter.lora);
  let n = adapter.lnF.weight.size + adapter.lnF.bias.size;
  for (const b of adapter.blocks.values()) {
    for (const l of [b.ln_1, b.ln_2, b.c_attn, b.attn_c_proj, b.c_fc, b.mlp_c_proj]) n += l.weight.size + l.bias.size;
  }
  return n * 4;
}
