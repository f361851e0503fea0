import { mkdir, open, rename, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';

/**
 * Writes a folder atomically: `write` fills a hidden sibling folder that then
 * replaces `dir` (created, or swapped with the old one, which is then
 * removed), so readers never see a mix of versions.
 */
export async function writeFolderAtomic(dir: string, write: (tmp: string) => Promise<void>): Promise<void> {
  const target = resolve(dir);
  const parent = dirname(target);
  const tag = `${process.pid}.${randomBytes(6).toString('hex')}`;
  const tmp = join(parent, `.${basename(target)}.${tag}.tmp`);
  await mkdir(parent, { recursive: true });
  await mkdir(tmp);
  try {
    await write(tmp);
    try {
      await rename(tmp, target);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
      // A folder cannot be renamed over a non-empty one: swap it out, then drop it.
      const old = join(parent, `.${basename(target)}.${tag}.old`);
      await rename(target, old);
      try {
        await rename(tmp, target);
      } catch (err2) {
        await rename(old, target);
        throw err2;
      }
      await rm(old, { recursive: true, force: true });
    }
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
  // Persist the rename; best effort, as some platforms cannot fsync a directory.
  await open(parent, 'r').then((d) => d.sync().finally(() => d.close())).catch(() => undefined);
}
