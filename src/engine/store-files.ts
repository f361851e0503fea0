/**
 * File-system habits shared by the stores: new entries are built in a hidden
 * temporary folder next to their final place and renamed into it (readers see
 * the whole entry or nothing), deletions rename away first, and names that
 * start with '.' are never entries.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';

/** This host's name as it goes into hidden names (no dots or slashes). */
const HOST = hostname().replace(/[^A-Za-z0-9_-]/g, '_') || 'host';

/**
 * A hidden name for an entry being written (`tmp`) or removed (`trash`):
 * `.<kind>-<host>-<pid>-<12 hex>`, so that a later process can tell a
 * leftover of a dead writer on this host from another replica's write in
 * progress (see {@link isOrphanedName}).
 */
export function hiddenName(kind: 'tmp' | 'trash'): string {
  return `.${kind}-${HOST}-${process.pid}-${randomBytes(6).toString('hex')}`;
}

/**
 * True when hidden entry `name` (a {@link hiddenName}, or a temporary file or
 * folder written inside one's name, such as `..tmp-<host>-<pid>-<hex>.<...>.tmp`)
 * was left by a process of this host that is gone, or by this very process
 * (called before it writes anything: after a restart in a container the new
 * process often has the old one's pid).
 */
export function isOrphanedName(name: string): boolean {
  const m = /^\.+(?:tmp|trash)-(.+)-(\d+)-[0-9a-f]{12}(?:\.|$)/.exec(name);
  if (!m || m[1] !== HOST) return false;
  const pid = Number(m[2]);
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

let idCounter = 0;

/**
 * A fresh id: `prefix`, the time and a per-process counter (both fixed-width
 * base 36, so ids sort by creation, even within one millisecond), then random hex.
 */
export function newId(prefix: string): string {
  idCounter = (idCounter + 1) % 36 ** 3;
  return `${prefix}-${Date.now().toString(36).padStart(9, '0')}${idCounter.toString(36).padStart(3, '0')}${randomBytes(3).toString('hex')}`;
}

/** A new empty hidden folder inside `parent` (created if needed), for building an entry. */
export async function makeTempDir(parent: string): Promise<string> {
  await mkdir(parent, { recursive: true });
  const dir = join(parent, hiddenName('tmp'));
  await mkdir(dir);
  return dir;
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

/** Moves a finished temporary folder to `target` (which must not exist) and persists the rename. */
export async function publishDir(tmp: string, target: string, parent: string): Promise<void> {
  await rename(tmp, target);
  await syncDir(parent);
}

/** Removes a folder tree: renamed to a hidden name first, so a crash mid-way leaves no half entry. */
export async function removeDir(dir: string, parent: string): Promise<void> {
  const trash = join(parent, hiddenName('trash'));
  try {
    await rename(dir, trash);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  await syncDir(parent);
  await rm(trash, { recursive: true, force: true });
}

/** Entry folder names inside `parent` (hidden ones skipped; leftovers of a crash are removed). */
export async function listEntries(parent: string): Promise<string[]> {
  await mkdir(parent, { recursive: true });
  const names: string[] = [];
  for (const d of await readdir(parent, { withFileTypes: true })) {
    if (d.name.startsWith('.')) {
      // Temporary or trash folders of a process that died: never entries.
      if (d.name.startsWith('.tmp-') || d.name.startsWith('.trash-')) {
        await rm(join(parent, d.name), { recursive: true, force: true });
      }
      continue;
    }
    if (d.isDirectory()) names.push(d.name);
  }
  return names.sort();
}

/** Writes a file and fsyncs it (inside a temporary folder: no rename needed). */
export async function writeFileSynced(path: string, text: string): Promise<void> {
  const fh = await open(path, 'wx');
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes a pretty-printed JSON file and fsyncs it. */
export function writeJsonSynced(path: string, value: unknown): Promise<void> {
  return writeFileSynced(path, JSON.stringify(value, null, 2) + '\n');
}
