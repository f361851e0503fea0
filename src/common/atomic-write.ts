/**
 * The one way gentune writes files that must never be seen half-written
 * (issue 19: before, peft-adapter.ts, safetensors.ts and the stores each had
 * their own scheme). A file is written to a hidden temporary file beside it,
 * fsynced and renamed over its name; a folder is built in a hidden temporary
 * folder beside it, its files fsynced, and renamed into place. Readers see
 * the old entry or the new one, never a mix, and a failed write removes its
 * temporary file or folder before it throws.
 *
 * Temporary names are `.tmp-<host>-<pid>-<12 hex>` (files add `.tmp`), so
 * that a later process can tell a leftover of a dead writer on this host from
 * another replica's write in progress ({@link isOrphanedName}).
 *
 * A full disk (ENOSPC) or quota (EDQUOT) is the one failure a client can act
 * on, so it is turned into {@link DiskFull} (RESOURCE_EXHAUSTED) here, once,
 * with the temporary entry already gone.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { ResourceExhausted } from './errors.js';

/** This host's name as it goes into hidden names (no dots or slashes). */
/** This host's name as it goes into temporary names and lease holder ids (letters, digits, `_`, `-`). */
export const HOST = hostname().replace(/[^A-Za-z0-9_-]/g, '_') || 'host';
/** Largest single write, in bytes (a write(2) may do less anyway). */
const CHUNK_BYTES = 1 << 30;

/**
 * A hidden name for an entry being written (`tmp`) or removed (`trash`):
 * `.<kind>-<host>-<pid>-<12 hex>`.
 */
export function hiddenName(kind: 'tmp' | 'trash'): string {
  return `.${kind}-${HOST}-${process.pid}-${randomBytes(6).toString('hex')}`;
}

/**
 * True when hidden entry `name` (a {@link hiddenName}, possibly with a suffix
 * such as `.tmp`, or an older writer's `..tmp-<host>-<pid>-<hex>.<...>.tmp`)
 * was left by a process of this host that is gone, or by this very process
 * (called before it writes anything: after a restart in a container the new
 * process often has the old one's pid).
 */
export function isOrphanedName(name: string): boolean {
  const m = /^\.+(?:tmp|trash)-(.+)-(\d+)-[0-9a-f]{12}(?:\.|$)/.exec(name);
  return m !== null && isGoneHere(m[1], Number(m[2]));
}

/**
 * True when process `pid` of host `host` is known to be gone: `host` is this
 * one and no such process runs, or `pid` is this process's own (an earlier
 * process whose pid this one reuses, as pid 1 in a restarted container).
 * Another host's processes are never known to be gone.
 */
export function isGoneHere(host: string, pid: number): boolean {
  if (host !== HOST) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** Hidden entries older than this are leftovers whoever wrote them (younger ones may be another replica's write in progress), in milliseconds. */
export const STALE_TEMP_MS = 15 * 60 * 1000;

/**
 * True when hidden entry `name`, last modified at `mtimeMs`, may be removed
 * as a leftover: a dead process's of this host ({@link isOrphanedName}) at
 * once, any other (another host's, a live process's) only once stale.
 */
export function isLeftover(name: string, mtimeMs: number, now = Date.now()): boolean {
  return isOrphanedName(name) || now - mtimeMs > STALE_TEMP_MS;
}

/** True for the errors of a full disk or an exhausted quota. */
export function isDiskFull(err: unknown): boolean {
  if (err instanceof DiskFull) return true;
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/**
 * RESOURCE_EXHAUSTED for a full disk or quota. The message names the data
 * directory when the store that caught it says which (no other server path:
 * the file that did not fit is the server's business and goes to the log).
 */
export class DiskFull extends ResourceExhausted {
  constructor(
    /** The data directory whose disk is full; undefined when not known yet. */
    readonly dataDir: string | undefined,
    options?: { cause?: unknown },
  ) {
    const code = (options?.cause as NodeJS.ErrnoException | undefined)?.code ?? 'ENOSPC';
    const where = dataDir === undefined ? 'the disk' : `the disk of the data directory ${dataDir}`;
    super(`no space left on ${where} (${code === 'EDQUOT' ? 'EDQUOT: quota exhausted' : code}); nothing was stored`, options);
    this.name = 'DiskFull';
  }
}

/**
 * `err` as a client should see it: a full disk becomes {@link DiskFull}
 * naming `dataDir`; anything else is returned unchanged.
 */
export function diskError(err: unknown, dataDir?: string): unknown {
  if (err instanceof DiskFull) return err.dataDir === dataDir || dataDir === undefined ? err : new DiskFull(dataDir, { cause: err.cause });
  return isDiskFull(err) ? new DiskFull(dataDir, { cause: err }) : err;
}

/** Flushes a folder's entries (a rename into it) to disk; best effort where folders cannot be opened. */
export async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // Some platforms cannot fsync a directory.
  }
}

/**
 * Writes a new file (it must not exist: inside a temporary folder) and
 * fsyncs it. `content` is text, or chunks pulled one at a time, so a
 * generator can produce them lazily. @throws DiskFull on a full disk.
 */
export async function writeFileSynced(path: string, content: string | Iterable<Uint8Array | string>): Promise<void> {
  try {
    const fh = await open(path, 'wx');
    try {
      for (const chunk of typeof content === 'string' ? [content] : content) {
        const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
        for (let done = 0; done < bytes.length; ) {
          done += (await fh.write(bytes, done, Math.min(bytes.length - done, CHUNK_BYTES))).bytesWritten;
        }
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw diskError(err);
  }
}

/** Writes a pretty-printed JSON file and fsyncs it (see {@link writeFileSynced}). */
export function writeJsonSynced(path: string, value: unknown): Promise<void> {
  return writeFileSynced(path, JSON.stringify(value, null, 2) + '\n');
}

/**
 * Writes `path` atomically: a hidden temporary file beside it, fsynced, then
 * renamed over `path`. @throws DiskFull on a full disk, the temporary file removed.
 */
export async function writeFileAtomic(path: string, content: string | Iterable<Uint8Array | string>): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `${hiddenName('tmp')}.tmp`);
  try {
    await writeFileSynced(tmp, content);
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw diskError(err);
  }
  await syncDir(dir);
}

/** A new empty hidden folder inside `parent` (created if needed), for building an entry. */
export async function makeTempDir(parent: string): Promise<string> {
  const dir = join(parent, hiddenName('tmp'));
  try {
    await mkdir(parent, { recursive: true });
    await mkdir(dir);
  } catch (err) {
    throw diskError(err);
  }
  return dir;
}

/**
 * Moves a finished temporary folder to `target` (which must not exist: the
 * rename fails with ENOTEMPTY or EEXIST otherwise) and persists the rename.
 */
export async function publishDir(tmp: string, target: string, parent: string): Promise<void> {
  await syncDir(tmp);
  try {
    await rename(tmp, target);
  } catch (err) {
    throw diskError(err);
  }
  await syncDir(parent);
}

/**
 * Writes a folder atomically: `write` fills a hidden sibling folder (with
 * {@link writeFileSynced}) that then replaces `dir` (created, or swapped with
 * the old one, which is then removed). @throws DiskFull on a full disk, the
 * temporary folder removed.
 */
export async function writeFolderAtomic(dir: string, write: (tmp: string) => Promise<void>): Promise<void> {
  const target = resolve(dir);
  const parent = dirname(target);
  const tmp = await makeTempDir(parent);
  try {
    await write(tmp);
    try {
      await publishDir(tmp, target, parent);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
      // A folder cannot be renamed over a non-empty one: swap it out, then drop it.
      const old = join(parent, hiddenName('trash'));
      await rename(target, old);
      try {
        await publishDir(tmp, target, parent);
      } catch (err2) {
        await rename(old, target);
        throw err2;
      }
      await rm(old, { recursive: true, force: true });
    }
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw diskError(err);
  }
}

