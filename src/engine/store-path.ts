/**
 * Reading inside the data directory without following symbolic links
 * (issue 18): a link in a store could lead anywhere on the host (an adapter
 * folder elsewhere, /etc/passwd as a weights file), so a store's folders are
 * checked with lstat and its files opened with O_NOFOLLOW. The data directory
 * itself, and a store's root folder, may be links (the operator's choice, a
 * mounted volume); only what lies below a store's root is checked.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, readFileSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { sep } from 'node:path';

const NO_FOLLOW = constants.O_RDONLY | constants.O_NOFOLLOW;

/** The error for a store entry that is a link or not what it should be (for the log, and for {@link clientReason}). */
function notFollowed(path: string, what: 'a folder' | 'a regular file'): Error {
  return Object.assign(new Error(`${path}: is a symbolic link or not ${what}; not followed`), { code: 'ELOOP' });
}

/** @throws unless `path` is a folder itself (lstat: not a link to one). */
export function assertRealDir(path: string): void {
  if (!lstatSync(path).isDirectory()) throw notFollowed(path, 'a folder');
}

/** True when `path` is a folder itself (not a link to one, not missing). */
export function isRealDir(path: string): boolean {
  try {
    return lstatSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Reads a regular file as UTF-8 with blocking I/O, refusing a symbolic link (ELOOP). */
export function readTextNoFollowSync(path: string): string {
  let fd: number;
  try {
    fd = openSync(path, NO_FOLLOW);
  } catch (err) {
    throw (err as NodeJS.ErrnoException).code === 'ELOOP' ? notFollowed(path, 'a regular file') : err;
  }
  try {
    if (!fstatSync(fd).isFile()) throw notFollowed(path, 'a regular file');
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

/** Opens a regular file for reading, refusing a symbolic link (ELOOP); the caller closes it. */
export async function openNoFollow(path: string): Promise<FileHandle> {
  let fh: FileHandle;
  try {
    fh = await open(path, NO_FOLLOW);
  } catch (err) {
    throw (err as NodeJS.ErrnoException).code === 'ELOOP' ? notFollowed(path, 'a regular file') : err;
  }
  if (!(await fh.stat()).isFile()) {
    await fh.close();
    throw notFollowed(path, 'a regular file');
  }
  return fh;
}

/** Reads a regular file, refusing a symbolic link (ELOOP): text with `encoding`, else bytes. */
export async function readFileNoFollow(path: string): Promise<Buffer>;
export async function readFileNoFollow(path: string, encoding: 'utf8'): Promise<string>;
export async function readFileNoFollow(path: string, encoding?: 'utf8'): Promise<Buffer | string> {
  const fh = await openNoFollow(path);
  try {
    return encoding ? await fh.readFile(encoding) : await fh.readFile();
  } finally {
    await fh.close();
  }
}

/** @throws unless `path` is a regular file itself (lstat: not a link to one). */
export function assertRegularFile(path: string): void {
  if (!lstatSync(path).isFile()) throw notFollowed(path, 'a regular file');
}

/**
 * An error's message as a client may see it: every mention of `dir` (a
 * server path) is cut, so `<dir>/adapter_config.json: not valid JSON` reads
 * `adapter_config.json: not valid JSON`, and so is every mention of `root`
 * (the store's folder, which holds `dir`): `<root>/x: ...` reads `x: ...`.
 */
export function clientReason(err: unknown, dir: string, root?: string): string {
  let message = err instanceof Error ? err.message : String(err);
  message = message.split(dir + sep).join('').split(dir).join('its folder');
  return root === undefined ? message : message.split(root + sep).join('').split(root).join('the store');
}
