/**
 * File-system habits shared by the stores: new entries are built in a hidden
 * temporary folder next to their final place and renamed into it (readers see
 * the whole entry or nothing), deletions rename away first, and only folders
 * whose names pass the store-name rule (src/common/store-name.ts: never
 * hidden) are entries; a symbolic link is never one (it could lead out of the
 * data directory).
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { hiddenName, isLeftover, syncDir } from '../common/atomic-write.js';
import { isStoreName } from '../common/store-name.js';

// The writing habits are the one atomic-write helper's; the stores take them from here.
export {
  hiddenName,
  isLeftover,
  isOrphanedName,
  makeTempDir,
  publishDir,
  syncDir,
  writeFileSynced,
  writeJsonSynced,
} from '../common/atomic-write.js';

let idCounter = 0;

/**
 * A fresh id: `prefix`, the time and a per-process counter (both fixed-width
 * base 36, so ids sort by creation, even within one millisecond), then random hex.
 */
export function newId(prefix: string): string {
  idCounter = (idCounter + 1) % 36 ** 3;
  return `${prefix}-${Date.now().toString(36).padStart(9, '0')}${idCounter.toString(36).padStart(3, '0')}${randomBytes(3).toString('hex')}`;
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
      // Temporary or trash folders are never entries; removed once no replica can still be writing them.
      if (d.name.startsWith('.tmp-') || d.name.startsWith('.trash-')) {
        const st = await lstat(join(parent, d.name)).catch(() => null);
        if (st && isLeftover(d.name, st.mtimeMs)) await rm(join(parent, d.name), { recursive: true, force: true });
      }
      continue;
    }
    // A Dirent of a symbolic link is not a directory: links are never followed.
    if (d.isDirectory() && isStoreName(d.name)) names.push(d.name);
  }
  return names.sort();
}

