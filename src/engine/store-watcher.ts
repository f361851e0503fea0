/**
 * Notices changes in a two-level store folder (`<root>/<name>/<entry>/`, the
 * layout of the adapter store) written by other processes, e.g. other
 * replicas sharing a volume. fs.watch (inotify on Linux) reports a rename
 * into `<root>` or `<root>/<name>` within milliseconds; it is unreliable on
 * network volumes (NFS, SMB and most FUSE mounts report nothing written by
 * another host), so a periodic full rescan backs it up. The watcher only says
 * what may have changed; the store rescans and decides what did.
 */
import { type FSWatcher, watch } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';

/** Options of {@link StoreWatcher}. */
export interface StoreWatcherOptions {
  /** Period of the full rescan, in milliseconds; 0 = fs.watch only. */
  rescanMs: number;
  /** Use fs.watch (false: the periodic rescan alone). */
  fsEvents: boolean;
}

/** What changed: one name's folder, or the root (names appeared or vanished). */
export type DirtyScope = { name: string } | 'all';

/** What the watcher calls. */
export interface StoreWatchHandlers {
  /** An fs.watch event: `scope` may have changed. */
  changed(scope: DirtyScope): void;
  /** The rescan period passed: rescan everything. */
  rescan(): void;
}

/** Watches `<root>` and each `<root>/<name>`, and tells the store what to rescan. */
export class StoreWatcher {
  private root: FSWatcher | null = null;
  private readonly names = new Map<string, FSWatcher>();
  /** Entry folders seen incomplete, watched until they are whole or gone: path -> watch. */
  private readonly pending = new Map<string, FSWatcher>();
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  /** No fs.watch (turned off, or it failed: inotify limits, unsupported file system): the periodic rescan carries on alone. */
  private degraded = false;

  constructor(
    private readonly dir: string,
    private readonly handlers: StoreWatchHandlers,
    private readonly log: Logger,
    private readonly options: StoreWatcherOptions,
  ) {}

  /** Starts watching the root and the periodic rescan. */
  start(): void {
    if (this.options.fsEvents) this.root = this.open(this.dir, () => this.handlers.changed('all'));
    else this.degraded = true;
    if (this.options.rescanMs > 0) {
      this.timer = setInterval(() => this.handlers.rescan(), this.options.rescanMs);
      // A watch must never keep the process alive on its own.
      this.timer.unref();
    }
  }

  /**
   * Keeps exactly `present` names watched. Call it before scanning those
   * names: an event after the watch starts is seen, an entry renamed in before
   * it is found by the scan, so nothing falls in between.
   */
  track(present: Iterable<string>): void {
    if (this.closed || this.degraded) return;
    const keep = new Set(present);
    for (const [name, w] of this.names) {
      if (keep.has(name)) continue;
      w.close();
      this.names.delete(name);
    }
    for (const name of keep) {
      if (this.names.has(name)) continue;
      const w = this.open(join(this.dir, name), () => this.handlers.changed({ name }));
      if (w) this.names.set(name, w);
    }
  }

  /**
   * Keeps exactly the entry folders in `incomplete` (path -> name) watched: a
   * writer that fills a folder in place rather than renaming it in changes
   * files inside it, which the name's watch does not see.
   */
  trackIncomplete(incomplete: ReadonlyMap<string, string>): void {
    if (this.closed || this.degraded) return;
    for (const [path, w] of this.pending) {
      if (incomplete.has(path)) continue;
      w.close();
      this.pending.delete(path);
    }
    for (const [path, name] of incomplete) {
      if (this.pending.has(path)) continue;
      const w = this.open(path, () => this.handlers.changed({ name }));
      if (w) this.pending.set(path, w);
    }
  }

  /** Stops every watch and the rescan timer; idempotent. */
  close(): void {
    this.closed = true;
    this.root?.close();
    this.root = null;
    for (const w of [...this.names.values(), ...this.pending.values()]) w.close();
    this.names.clear();
    this.pending.clear();
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private open(path: string, onEvent: () => void): FSWatcher | null {
    if (this.degraded) return null;
    try {
      const w = watch(path, { persistent: false }, onEvent);
      w.on('error', (err: NodeJS.ErrnoException) => {
        // The folder went away (the rescan notices) or the watch broke: stop this one quietly.
        if (err.code !== 'ENOENT' && err.code !== 'EPERM') this.log.warn({ err, path }, 'store watch failed');
        w.close();
        for (const map of [this.names, this.pending]) for (const [key, other] of map) if (other === w) map.delete(key);
        onEvent();
      });
      return w;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return null; // removed since it was listed
      this.degraded = true;
      this.log.warn({ err, path, rescanMs: this.options.rescanMs }, 'fs.watch unavailable; relying on the periodic rescan');
      return null;
    }
  }
}
