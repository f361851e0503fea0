/**
 * Which adapters are resident on the backend. Requests resolve `name[@version]`
 * (latest by default) and take a lease; the first lease loads the version from
 * the store, later ones share its tensors. Unpinned versions that no request
 * holds are evicted, least recently used first, when resident bytes pass the
 * budget or resident versions pass `maxAdapters`. Deleting or unloading a
 * version in use only retires it: requests in flight finish with the tensors
 * they hold, which are freed with the last lease.
 *
 * Hot swap: a request binds to a version when it takes its lease, so a new
 * version (published here, or renamed into the shared store by another
 * replica and seen by the store's watch) is atomic for requests: those in
 * flight finish on the version they started with, every later one resolves
 * to the new one. When a name in use gets a new version it is loaded at once,
 * in the background, so the first request after the swap does not pay for it.
 */
import type { Logger } from 'pino';
import { FailedPrecondition, NotFound } from '../common/errors.js';
import { type Adapter, adapterTensors, disposeAdapter } from '../model/adapter.js';
import type { AdapterAliases } from './adapter-aliases.js';
import type { AdapterStore, AdapterStoreChange, StoredAdapterVersion } from './adapter-store.js';
import type { AdapterInfo, AdapterRef, AdapterVersionInfo, FinalMetrics } from './engine-api.js';
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
  /** Eviction order: when it was made resident or last leased (the registry's `now`). */
  touchedMs: number;
}

/**
 * What ListAdapters shows of a version: the store's record, residency and use
 * (`requestsServed` counts each {@link AdapterRegistry.acquire}: a Generate
 * request, or an Evaluate call scoring the version).
 */
export type AdapterVersionUsage = AdapterVersionInfo;

/** Default budget for resident unpinned adapters, in bytes. */
export const DEFAULT_ADAPTER_BUDGET_BYTES = 512 * 1024 * 1024;
/** Default ceiling of resident versions (`--max-adapters`). */
export const DEFAULT_MAX_ADAPTERS = 32;

/** Options of {@link AdapterRegistry} beyond the byte budget. */
export interface AdapterRegistryOptions {
  /** Resident versions above which idle, unpinned ones are evicted (default 32). */
  maxAdapters?: number;
  /** The aliases (`name@prod`) requests may name; default none. */
  aliases?: AdapterAliases;
  /**
   * Monotonic clock in milliseconds that orders eviction and times loads
   * (default performance.now); tests inject one to fix the order.
   */
  now?: () => number;
}

/** Resolves, loads, pins and frees adapters. */
export class AdapterRegistry {
  private readonly resident = new Map<string, Resident>();
  private readonly lastUsed = new Map<string, number>();
  private readonly served = new Map<string, number>();
  private readonly maxAdapters: number;
  private readonly now: () => number;
  private readonly unsubscribe: () => void;
  private readonly aliases: AdapterAliases | undefined;

  constructor(
    private readonly store: AdapterStore,
    private readonly log: Logger,
    /** Resident bytes above which idle, unpinned versions are evicted. */
    private readonly budgetBytes = DEFAULT_ADAPTER_BUDGET_BYTES,
    private readonly metrics: EngineMetrics = noMetrics,
    options: AdapterRegistryOptions = {},
  ) {
    this.maxAdapters = options.maxAdapters ?? DEFAULT_MAX_ADAPTERS;
    this.now = options.now ?? (() => performance.now());
    this.aliases = options.aliases;
    this.unsubscribe = store.onChange((change) => this.onStoreChange(change));
  }

  /**
   * The stored version `ref` names: the given one, an alias's target (read
   * now), or the newest that is not broken (the newest of all when every one
   * is). It may be broken: use {@link usable} before serving it.
   * @throws NotFound naming `field`.
   */
  resolve(ref: AdapterRef, field = 'adapter'): StoredAdapterVersion {
    if (ref.alias !== undefined) {
      const version = this.aliases?.resolve(ref.name, ref.alias);
      if (version === undefined) throw new NotFound(`\`${field}\` ${JSON.stringify(`${ref.name}@${ref.alias}`)}: no such alias`);
      return this.resolve({ name: ref.name, version }, field);
    }
    const versions = this.store.versions(ref.name);
    const found = ref.version === undefined ? (latestLoadable(versions) ?? versions.at(-1)) : versions.find((v) => v.version === ref.version);
    if (!found) {
      const what = ref.version === undefined ? ref.name : `${ref.name}@${ref.version}`;
      throw new NotFound(`\`${field}\` ${JSON.stringify(what)}: no such adapter${versions.length > 0 && ref.version !== undefined ? ` version (latest is ${versions.at(-1)!.version})` : ''}`);
    }
    return found;
  }

  /** {@link resolve}, refusing a broken version. @throws FailedPrecondition with the reason it is broken. */
  usable(ref: AdapterRef, field = 'adapter'): StoredAdapterVersion {
    const v = this.resolve(ref, field);
    if (v.broken !== undefined) {
      throw new FailedPrecondition(`\`${field}\` ${JSON.stringify(`${v.name}@${v.version}`)} is stored but broken: ${v.broken}`);
    }
    return v;
  }

  /** Loads `ref` if needed and holds it until `release()`; counts as a request served by the version. */
  acquire(ref: AdapterRef, field = 'adapter'): Promise<AdapterLease> {
    return this.lease(ref, field, true);
  }

  /** Makes a version resident (and pinned, if asked: never evicted); idempotent. */
  async load(ref: AdapterRef, pin: boolean): Promise<AdapterInfo> {
    const lease = await this.lease(ref, 'adapter', false);
    const entry = this.resident.get(lease.label);
    if (pin && entry) entry.pinned = true;
    lease.release();
    return this.info(ref.name);
  }

  /**
   * Loads each of `refs` (latest version when none), as LoadAdapter without
   * pin does: resident now, evictable later. One that fails is logged and
   * skipped (the server starts anyway); returns the labels loaded.
   */
  async preload(refs: readonly AdapterRef[]): Promise<string[]> {
    const loaded: string[] = [];
    for (const ref of refs) {
      try {
        const v = this.usable(ref, 'preload');
        await this.load({ name: v.name, version: v.version }, false);
        loaded.push(`${v.name}@${v.version}`);
      } catch (err) {
        this.log.warn({ err, adapter: ref.version === undefined ? ref.name : `${ref.name}@${ref.version}` }, 'adapter preload failed');
      }
    }
    if (refs.length > 0) this.log.info({ adapters: loaded }, 'adapters preloaded');
    return loaded;
  }

  /** Unpins and frees a version (every version when ref.version is undefined); idempotent. */
  unload(ref: AdapterRef): AdapterInfo {
    const labels = ref.version === undefined && ref.alias === undefined
      ? this.store.versions(ref.name).map((v) => `${v.name}@${v.version}`)
      : [`${this.resolve(ref).name}@${this.resolve(ref).version}`];
    if (labels.length === 0) this.resolve(ref);
    for (const label of labels) this.retire(label);
    return this.info(ref.name);
  }

  /** Deletes a version, or every version when ref.version is undefined. */
  async delete(ref: AdapterRef): Promise<void> {
    const versions = ref.version === undefined && ref.alias === undefined ? this.store.versions(ref.name) : [this.resolve(ref)];
    if (versions.length === 0) this.resolve(ref);
    for (const v of versions) {
      const label = `${v.name}@${v.version}`;
      this.retire(label);
      this.forgetUse(label);
      await this.store.delete(v.name, v.version);
      // An alias never points at a version that is gone: it is removed with it.
      await this.aliases?.dropVersion(v.name, v.version);
    }
  }

  /**
   * Stores a freshly trained adapter as the next version of `name` and keeps
   * it resident (the registry now owns its tensors). New requests see it at once.
   */
  async publish(name: string, adapter: Adapter, jobId?: string, jobMetrics?: FinalMetrics, mayPublish?: () => boolean): Promise<StoredAdapterVersion> {
    let stored: StoredAdapterVersion;
    try {
      stored = await this.store.save(name, adapter, jobId, jobMetrics, mayPublish);
    } catch (err) {
      disposeAdapter(adapter);
      throw err;
    }
    const label = `${name}@${stored.version}`;
    // The store's watch may have seen the folder first and started loading it: ours replaces that copy.
    this.retire(label);
    this.resident.set(label, { label, adapter, bytes: adapterBytes(adapter), refs: 0, pinned: false, retired: false, touchedMs: this.now() });
    this.evict();
    return stored;
  }

  /** The version job `jobId` stored under `name`, looked up in the folder now (another replica may have written it). */
  async storedByJob(name: string, jobId: string): Promise<StoredAdapterVersion | undefined> {
    await this.store.refresh([name]);
    return this.store.versionOfJob(name, jobId);
  }

  /** Points `name@alias` at `version` (NotFound naming `version` when it is not stored); returns the adapter. */
  async setAlias(name: string, alias: string, version: number): Promise<AdapterInfo> {
    if (!this.aliases) throw new NotFound('`alias`: this server keeps no aliases');
    this.resolve({ name, version }, 'version');
    await this.aliases.set(name, alias, version);
    this.log.info({ adapter: `${name}@${alias}`, version }, 'adapter alias moved');
    return this.info(name);
  }

  /** Every adapter, sorted by name. */
  list(): AdapterInfo[] {
    return [...this.store.list().keys()].map((name) => this.info(name));
  }

  /**
   * One adapter with all its versions: residency, requests served, last use.
   * @throws NotFound naming `adapter`.
   */
  info(name: string): AdapterInfo {
    const versions = this.store.versions(name);
    if (versions.length === 0) throw new NotFound(`\`adapter\` ${JSON.stringify(name)}: no such adapter`);
    return { name, latestVersion: latestLoadable(versions)?.version ?? 0, versions: versions.map((v) => this.versionInfo(v)), aliases: this.aliases?.list(name) ?? [] };
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

  /**
   * Frees every resident adapter no request holds (held ones go with their
   * last lease) and stops the store's watch.
   */
  dispose(): void {
    this.unsubscribe();
    this.store.close();
    for (const label of [...this.resident.keys()]) this.retire(label);
  }

  private async lease(ref: AdapterRef, field: string, serve: boolean): Promise<AdapterLease> {
    const v = this.usable(ref, field);
    const label = `${v.name}@${v.version}`;
    const entry = this.entry(label, v);
    entry.refs++;
    try {
      const adapter = entry.adapter ?? (await entry.loading!);
      entry.touchedMs = this.now();
      if (serve) {
        this.lastUsed.set(label, Date.now());
        this.served.set(label, (this.served.get(label) ?? 0) + 1);
      }
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

  private versionInfo(v: StoredAdapterVersion): AdapterVersionUsage {
    const label = `${v.name}@${v.version}`;
    const e = this.resident.get(label);
    const { name: _name, jobMetrics: _metrics, ...rest } = v;
    return {
      ...rest,
      residency: !e?.adapter ? 'stored' : e.pinned ? 'pinned' : 'loaded',
      lastUsedAtMs: this.lastUsed.get(label),
      requestsServed: this.served.get(label) ?? 0,
    };
  }

  /**
   * Versions another writer added or removed. Removed ones retire (requests
   * holding them finish first). A new latest version of a name that has a
   * version resident is loaded now, so the swap costs no request a load.
   */
  private onStoreChange(change: AdapterStoreChange): void {
    for (const v of change.removed) {
      const label = `${v.name}@${v.version}`;
      this.retire(label);
      this.forgetUse(label);
    }
    const names = new Set(change.added.map((v) => v.name));
    for (const name of names) {
      const latest = latestLoadable(this.store.versions(name));
      if (!latest || this.resident.has(`${name}@${latest.version}`)) continue;
      const inUse = [...this.resident.keys()].some((label) => label.slice(0, label.lastIndexOf('@')) === name);
      if (!inUse) continue;
      this.load({ name, version: latest.version }, false).catch((err: unknown) =>
        this.log.warn({ err, adapter: `${name}@${latest.version}` }, 'loading a new adapter version failed'),
      );
    }
  }

  private forgetUse(label: string): void {
    this.lastUsed.delete(label);
    this.served.delete(label);
  }

  /** The resident entry of a version, starting its load when there is none. */
  private entry(label: string, v: StoredAdapterVersion): Resident {
    const existing = this.resident.get(label);
    if (existing) return existing;
    const entry: Resident = { label, bytes: 0, refs: 0, pinned: false, retired: false, touchedMs: this.now() };
    const startedMs = this.now();
    entry.loading = this.store.load(v.name, v.version).then(
      (adapter) => {
        this.metrics.onAdapterLoad(this.now() - startedMs, true);
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
        this.metrics.onAdapterLoad(this.now() - startedMs, false);
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

  /**
   * Evicts idle unpinned versions, least recently used first, while resident
   * bytes pass the budget or resident versions pass maxAdapters.
   */
  private evict(): void {
    let bytes = this.residentBytes;
    let count = this.residentCount;
    if (bytes <= this.budgetBytes && count <= this.maxAdapters) return;
    const idle = [...this.resident.values()]
      .filter((e) => e.adapter && e.refs === 0 && !e.pinned)
      .sort((a, b) => a.touchedMs - b.touchedMs);
    for (const e of idle) {
      if (bytes <= this.budgetBytes && count <= this.maxAdapters) break;
      bytes -= e.bytes;
      count--;
      this.retire(e.label);
      this.metrics.onAdapterEvicted();
    }
  }
}

/** The newest version that is not broken (what a bare name serves), if any. */
function latestLoadable(versions: readonly StoredAdapterVersion[]): StoredAdapterVersion | undefined {
  return [...versions].reverse().find((v) => v.broken === undefined);
}

/** Bytes an adapter's tensors occupy (float32). */
export function adapterBytes(adapter: Adapter): number {
  return 4 * adapterTensors(adapter).reduce((n, t) => n + t.size, 0);
}
