import { readFile } from 'node:fs/promises';
import { InvalidArgument } from '../../common/errors.js';

/**
 * Reads a UTF-8 file of a model folder; undefined when it does not exist.
 *
 * @throws InvalidArgument naming the file when it exists but cannot be read.
 */
export async function readOptionalFile(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new InvalidArgument(`${path}: cannot read (${code ?? 'error'})`, { cause: err });
  }
}

/** JSON.parse, failing with InvalidArgument naming `file`. */
export function parseJsonFile(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InvalidArgument(`${file}: malformed JSON (${(err as Error).message})`, { cause: err });
  }
}

/** A JSON object (not null, not an array). */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
