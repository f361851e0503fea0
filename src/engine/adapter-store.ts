/**
 * Adapters on disk: `<dataDir>/adapters/<name>/<version>/` in PEFT's layout
 * (adapter_config.json + adapter_model.safetensors, see
 * src/model/checkpoint/peft-adapter.ts) plus `gentune.json` (when it was made
 * and by which job). A version is written into a hidden temporary folder and
 * renamed into place, so a version folder is always complete; versions are
 * 1, 2, ... per name and never reused while the name has any version left.
 * A PEFT folder copied in by hand (no gentune.json) is listed too.
 *
 * The folder may be shared by replicas: the store watches it (fs.watch, backed
 * up by a periodic rescan) so that a version another process renames into
 * place becomes available, and a deleted one disappears, without a restart.
 * Hidden folders (`.tmp-*` being written, `.trash-*` being removed) are never
 * versions, and neither is a version folder whose files are still incomplete
 * (a writer that does not rename): it is picked up once complete. So a
 * process killed while it publishes leaves no half version, only a hidden
 * folder, removed when the store next opens (at once when it was this host's
 * dead process; after 15 minutes otherwise, as it may be another replica's
 * write in progress). Every version is checked as loading it would check it
 * (adapter-version-folder.ts); one that fails (truncated weights, a bad
 * adapter_config.json or gentune.json, an `r` its tensors do not have, a
 * symbolic link) is logged, naming the folder, and listed as broken with the
 * reason; it is rechecked at every scan of its name, and never served. A
 * bare name resolves to its newest version that is not broken.
 *
 * Nothing below the folder is followed through a symbolic link: a name or
 * version that is a link is not an adapter, files are opened with
 * O_NOFOLLOW, and a delete removes a link, never what it points to.
 */
import { readdirSync } from 'node:fs';
import { lstat, mkdir, readdir, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { diskError } from '../common/atomic-write.js';
import { FailedPrecondition, InvalidArgument, Unavailable } from '../common/errors.js';
import { isStoreName, STORE_NAME_RULE } from '../common/store-name.js';
import type { Adapter } from '../model/adapter.js';
import { loadAdapter, writeAdapterFiles } from '../model/checkpoint/peft-adapter.js';
import type { GptConfig } from '../model/gpt-config.js';
import type { FinalMetrics } from './engine-api.js';
import { META_FILE, readVersion, type StoredAdapterVersion } from './adapter-version-folder.js';

export type { StoredAdapterVersion } from './adapter-version-folder.js';
import { isLeftover, makeTempDir, publishDir, removeDir, writeJsonSynced } from './store-files.js';
import { assertRealDir, clientReason, isRealDir } from './store-path.js';
import { type DirtyScope, StoreWatcher } from './store-watcher.js';

const VERSION_DIR = /^[1-9]\d*$/;
/** Default period of the full rescan that backs up fs.watch, in milliseconds. */
export const DEFAULT_RESCAN_MS = 2000;
/** Attempts at the next version number when another writer takes it first. */
const SAVE_ATTEMPTS = 5;


/** Versions that appeared in, or vanished from, the store (by another writer, or this one). */
export interface AdapterStoreChange {
  added: StoredAdapterVersion[];
  removed: StoredAdapterVersion[];
}

/** Options of {@link AdapterStore.open}. */
export interface AdapterStoreOptions {
  /** Watch the folder for versions written or deleted by other processes (default true). */
  watch?: boolean;
  /** Period of the full rescan backing up fs.watch, in milliseconds (default 2000; 0 = fs.watch only). */
  rescanMs?: number;
  /** Use fs.watch events (default true); false = the periodic rescan alone, as on a volume without them. */
  fsEvents?: boolean;
  /**
   * Remove hidden leftovers of dead writers at open (default true). False
   * where another store of this process may be writing (a job worker's).
   */
  removeLeftovers?: boolean;
}

/** The adapter folders of one data directory. */
export class AdapterStore {
  /** name -> version -> info. */
  private readonly adapters = new Map<string, Map<number, StoredAdapterVersion>>();
  /** Writes run one at a time, so two publishes of a name never pick the same version. */
  private writing: Promise<unknown> = Promise.resolve();
  private readonly listeners = new Set<(change: AdapterStoreChange) => void>();
  private watcher: StoreWatcher | null = null;
  /** Listings are numbered; a name's folder is applied only from a listing newer than the last one applied. */
  private listingSeq = 0;
  private readonly appliedSeq = new Map<string, number>();
  /** The periodic full rescan in progress (one at a time). */
  private fullScan: Promise<void> | null = null;
  /** Labels being deleted by this store: a scan must not bring them back. */
  private readonly deleting = new Set<string>();
  /** Version folders found broken (reported once per reason, rechecked at every scan of their name): path -> name. */
  private readonly unreadable = new Map<string, string>();
  /** The data directory (the one server path a client may see: it names the disk when it is full). */
  private readonly dataDir: string;

  private constructor(
    /** `<dataDir>/adapters`. */
    readonly dir: string,
    private readonly base: GptConfig,
    private readonly log: Logger,
  ) {
    this.dataDir = dirname(dir);
  }

  /** Lists every version on disk (broken ones are logged and listed as broken), then watches for changes. */
  static async open(dir: string, base: GptConfig, log: Logger, options: AdapterStoreOptions = {}): Promise<AdapterStore> {
    const store = new AdapterStore(dir, base, log);
    await mkdir(dir, { recursive: true });
    if (options.removeLeftovers ?? true) await removeLeftovers(dir, log);
    if (options.watch ?? true) {
      const handlers = { changed: (scope: DirtyScope) => store.onWatchEvent(scope), rescan: () => store.onRescanTick() };
      store.watcher = new StoreWatcher(dir, handlers, log, {
        rescanMs: options.rescanMs ?? DEFAULT_RESCAN_MS,
        fsEvents: options.fsEvents ?? true,
      });
      store.watcher.start();
    }
    await store.rescan();
    return store;
  }

  /** Calls `listener` after each change of the stored versions; returns the unsubscribe function. */
  onChange(listener: (change: AdapterStoreChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Rescans the whole folder now (the watch does this by itself); resolves when the store is up to date. */
  rescan(): Promise<void> {
    return this.scanAll();
  }

  /**
   * Brings the versions of `names` in line with their folders now, with one
   * synchronous listing each: a request that resolves a name sees a version
   * renamed in a moment ago even when its watch event is still queued behind
   * the message that carried the request (the serving thread handles both in
   * the same event-loop turn, the message first).
   */
  refresh(names: readonly string[]): Promise<void> {
    return this.scanNames(names.filter(isStoreName), true);
  }

  /** Stops watching; idempotent. The store still serves what it knows. */
  close(): void {
    this.watcher?.close();
    this.watcher = null;
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
    const versions = this.adapters.get(name);
    return versions ? [...versions.values()].sort((a, b) => a.version - b.version) : [];
  }

  /** The version job `jobId` stored under `name`, if any (listed as the store last scanned it). */
  versionOfJob(name: string, jobId: string): StoredAdapterVersion | undefined {
    return this.versions(name).find((v) => v.jobId === jobId);
  }

  /** One version, if stored. */
  get(name: string, version: number): StoredAdapterVersion | undefined {
    return this.adapters.get(name)?.get(version);
  }

  /**
   * Writes `adapter` as the next version of `name` and returns what was
   * stored. The folder is rescanned first and the number retried if another
   * writer takes it meanwhile, so replicas sharing the folder never collide.
   * `jobId` and `jobMetrics` (the producing job's) go into gentune.json: a
   * job resumed after its holder died there finds its adapter stored.
   * `mayPublish` (the job's lease still held) is asked right before the
   * rename; false rejects with Unavailable and stores nothing.
   */
  save(name: string, adapter: Adapter, jobId?: string, jobMetrics?: FinalMetrics, mayPublish?: () => boolean): Promise<StoredAdapterVersion> {
    const run = this.writing.then(async () => {
      // Checked where requests come in too; here so that no caller can make `.tmp` or `..` a name.
      if (!isStoreName(name)) throw new InvalidArgument(`\`adapter\` must be ${STORE_NAME_RULE}, got ${JSON.stringify(name)}`);
      const parent = join(this.dir, name);
      await mkdir(parent, { recursive: true }).catch((err: unknown) => {
        throw diskError(err, this.dataDir);
      });
      if (!isRealDir(parent)) throw new FailedPrecondition(`\`adapter\` ${JSON.stringify(name)}: its folder in the store is a symbolic link or not a folder, which is never followed`);
      let tmp: string | undefined;
      try {
        tmp = await makeTempDir(parent);
        await writeAdapterFiles(tmp, adapter, this.base);
        await writeJsonSynced(join(tmp, META_FILE), { createdAtMs: Date.now(), jobId, jobMetrics });
        for (let attempt = 1; ; attempt++) {
          await this.scanNames([name], true);
          const onDisk = (await readdir(parent)).filter((v) => VERSION_DIR.test(v)).map(Number);
          const version = Math.max(0, ...onDisk, ...this.versions(name).map((v) => v.version)) + 1;
          // Checked right before the rename that publishes: a job whose lease was lost meanwhile publishes nothing.
          if (mayPublish && !mayPublish()) throw new Unavailable(`adapter ${JSON.stringify(name)}: the job's lease was lost; the version is not published`);
          try {
            await publishDir(tmp, join(parent, String(version)), parent);
          } catch (err) {
            const code = (err as NodeJS.ErrnoException).code;
            if ((code === 'ENOTEMPTY' || code === 'EEXIST') && attempt < SAVE_ATTEMPTS) continue;
            throw err;
          }
          const info = readVersion(join(parent, String(version)), name, version, this.base);
          this.remember([info]);
          this.log.info({ adapter: `${name}@${version}`, jobId, sizeBytes: info.sizeBytes }, 'adapter stored');
          return info;
        }
      } catch (err) {
        if (tmp !== undefined) await rm(tmp, { recursive: true, force: true });
        throw diskError(err, this.dataDir);
      }
    });
    this.writing = run.catch(() => undefined);
    return run;
  }

  /**
   * Uploads a stored version to the backend; the caller owns the tensors.
   * The files are read with blocking I/O: on the serving thread each
   * asynchronous read would wait behind a decode step (measured: the first
   * request on a new version took ~2 s under 16 streams, ~0.2 s once loaded).
   * @throws FailedPrecondition with the reason when the folder does not load
   *   (without server paths; the cause goes to the log).
   */
  async load(name: string, version: number): Promise<Adapter> {
    const dir = join(this.dir, name, String(version));
    try {
      assertRealDir(join(this.dir, name));
      assertRealDir(dir);
      return await loadAdapter(dir, this.base, { blocking: true, noFollow: true });
    } catch (err) {
      this.log.error({ adapter: `${name}@${version}`, err }, 'adapter does not load');
      throw new FailedPrecondition(`adapter ${JSON.stringify(`${name}@${version}`)} is stored but cannot be loaded: ${clientReason(err, dir, this.dir)}`, { cause: err });
    }
  }

  /** Deletes one version (its folder, then the name's folder when it was the last). */
  async delete(name: string, version: number): Promise<void> {
    const label = `${name}@${version}`;
    const info = this.get(name, version);
    this.deleting.add(label);
    try {
      if (info) this.forget([info]);
      const parent = join(this.dir, name);
      // A name that is a link is never listed; were it followed, the rename below would move a folder outside the data directory.
      if (!isRealDir(parent)) return;
      // The version itself may be a link (listed as broken): removeDir renames and removes the link, never its target.
      await removeDir(join(parent, String(version)), parent);
      if (this.versions(name).length === 0) {
        // Another version may be on its way in: only an empty folder goes.
        const left = await readdir(parent).catch(() => ['?']);
        if (left.length === 0) await rm(parent, { recursive: true, force: true });
      }
    } finally {
      this.deleting.delete(label);
    }
    this.log.info({ adapter: label }, 'adapter version deleted');
  }

  /**
   * A watch event: `scope` may have changed. Scanned at once with synchronous
   * listings (a folder or two), so a new version is visible within
   * milliseconds instead of waiting behind decode steps for each await.
   */
  private onWatchEvent(scope: DirtyScope): void {
    const scan = scope === 'all' ? this.scanRootNow() : this.scanNames([scope.name], true);
    scan.catch((err: unknown) => this.log.warn({ err, dir: this.dir }, 'adapter store scan failed'));
  }

  /** The periodic full rescan; skipped while the previous one still runs (a slow volume). */
  private onRescanTick(): void {
    this.fullScan ??= this.scanAll()
      .catch((err: unknown) => this.log.warn({ err, dir: this.dir }, 'adapter store rescan failed'))
      .finally(() => (this.fullScan = null));
  }

  /** The names the root folder holds (a synchronous listing, or not). */
  private async namesOnDisk(sync: boolean): Promise<string[]> {
    const entries = sync ? readdirSync(this.dir, { withFileTypes: true }) : await readdir(this.dir, { withFileTypes: true });
    return entries.filter((d) => d.isDirectory() && isStoreName(d.name)).map((d) => d.name);
  }

  /** After an event in the root: names that appeared or vanished (watched from now on) are scanned. */
  private async scanRootNow(): Promise<void> {
    const onDisk = await this.namesOnDisk(true);
    this.watcher?.track(onDisk);
    const present = new Set(onDisk);
    const changed = [...onDisk.filter((n) => !this.adapters.has(n)), ...[...this.adapters.keys()].filter((n) => !present.has(n))];
    await this.scanNames(changed, true);
  }

  /** Every name on disk (watched from now on) and every name known, listed asynchronously (in parallel). */
  private async scanAll(): Promise<void> {
    const onDisk = await this.namesOnDisk(false);
    this.watcher?.track(onDisk);
    await this.scanNames([...new Set([...onDisk, ...this.adapters.keys()])].sort(), false);
  }

  /**
   * Brings the versions of `names` in line with their folders and tells the
   * listeners what changed. The folders are listed first (synchronously with
   * `listSync`), then compared in one synchronous pass; a listing older than
   * one already applied for its name is dropped, so scans that overlap never
   * bring back what a newer one saw gone.
   */
  private async scanNames(names: string[], listSync: boolean): Promise<void> {
    const list = async (name: string) => {
      const seq = ++this.listingSeq;
      const dir = join(this.dir, name);
      let entries: string[];
      try {
        // A name that is a symbolic link holds no versions: never followed.
        if (listSync ? !isRealDir(dir) : !(await lstat(dir)).isDirectory()) throw new Error('not a folder');
        entries = listSync ? readdirSync(dir) : await readdir(dir);
      } catch {
        entries = [];
      }
      return { name, seq, entries };
    };
    const listings = await Promise.all(names.map(list));
    const added: StoredAdapterVersion[] = [];
    const removed: StoredAdapterVersion[] = [];
    for (const { name, seq, entries } of listings) {
      if ((this.appliedSeq.get(name) ?? 0) > seq) continue;
      const onDisk = new Set(entries.filter((v) => VERSION_DIR.test(v)).map(Number));
      this.appliedSeq.set(name, seq);
      for (const v of this.versions(name)) if (!onDisk.has(v.version)) removed.push(v);
      for (const [path, of] of this.unreadable) if (of === name && !onDisk.has(Number(basename(path)))) this.unreadable.delete(path);
      for (const version of [...onDisk].sort((a, b) => a - b)) {
        const label = `${name}@${version}`;
        const known = this.get(name, version);
        if ((known && known.broken === undefined) || this.deleting.has(label)) continue;
        const dir = join(this.dir, name, String(version));
        const info = readVersion(dir, name, version, this.base);
        if (info.broken === undefined) {
          this.unreadable.delete(dir);
        } else {
          // Half-written by a writer that does not rename, or broken: listed as
          // broken, watched and rechecked at every scan, reported once per reason.
          if (known?.broken !== info.broken) this.log.warn({ adapter: label, dir, reason: info.broken }, 'adapter version is broken');
          this.unreadable.set(dir, name);
        }
        if (!known || known.broken !== info.broken) added.push(info);
      }
    }
    this.watcher?.trackIncomplete(this.unreadable);
    this.forget(removed);
    this.remember(added);
  }

  /** Adds versions; a known one is replaced only while broken (rechecked: whole now, or broken another way). */
  private remember(infos: StoredAdapterVersion[]): void {
    const added = infos.filter((info) => {
      let versions = this.adapters.get(info.name);
      if (!versions) this.adapters.set(info.name, (versions = new Map()));
      const known = versions.get(info.version);
      if (known && (known.broken === undefined || known.broken === info.broken)) return false;
      versions.set(info.version, info);
      return true;
    });
    if (added.length > 0) this.emit({ added, removed: [] });
  }

  private forget(infos: StoredAdapterVersion[]): void {
    const removed = infos.filter((info) => {
      const versions = this.adapters.get(info.name);
      if (!versions?.delete(info.version)) return false;
      if (versions.size === 0) this.adapters.delete(info.name);
      return true;
    });
    if (removed.length > 0) this.emit({ added: [], removed });
  }

  private emit(change: AdapterStoreChange): void {
    for (const l of change.added) if (l.broken === undefined) this.log.info({ adapter: `${l.name}@${l.version}` }, 'adapter version available');
    for (const l of change.removed) this.log.info({ adapter: `${l.name}@${l.version}` }, 'adapter version gone');
    for (const listener of this.listeners) {
      try {
        listener(change);
      } catch (err) {
        this.log.error({ err }, 'adapter store listener failed');
      }
    }
  }
}

/**
 * Removes hidden leftovers of writers (`.tmp-*` and `.trash-*` folders, and
 * the `.*.tmp` files and folders written inside them) in the root and every
 * name's folder: those of a dead process of this host at once, any other
 * once stale (isLeftover, atomic-write.ts).
 */
async function removeLeftovers(dir: string, log: Logger): Promise<void> {
  const now = Date.now();
  // Only real name folders: a link could lead to another tree, whose hidden entries are not ours.
  const parents = [dir, ...(await readdir(dir)).filter((n) => !n.startsWith('.')).map((n) => join(dir, n)).filter(isRealDir)];
  for (const parent of parents) {
    for (const name of await readdir(parent).catch(() => [] as string[])) {
      const hidden = name.startsWith('.tmp-') || name.startsWith('.trash-') || (name.startsWith('.') && name.endsWith('.tmp'));
      if (!hidden) continue;
      const path = join(parent, name);
      const st = await lstat(path).catch(() => null);
      if (st && isLeftover(name, st.mtimeMs, now)) {
        log.info({ path }, 'removing a leftover of an interrupted adapter write');
        await rm(path, { recursive: true, force: true });
      }
    }
  }
}
