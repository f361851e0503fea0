/**
 * Starts a worker thread from a module next to the caller. gentune runs its
 * TypeScript sources through tsx (no build step), and on Node 20 a worker does
 * not get the parent's `--import tsx` loader for its entry module:
 * `new Worker(new URL('./x.ts', import.meta.url), { execArgv: process.execArgv })`
 * fails with ERR_UNKNOWN_FILE_EXTENSION under both `node --import tsx` and
 * `npx tsx`. So a `.ts` entry is started through a one-line bootstrap that
 * registers tsx's ESM hooks inside the worker, then imports the entry.
 * A compiled `.js` entry is started directly.
 */
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

/** What to start and what it receives. */
export interface StartWorkerOptions {
  /** Structured-cloned into the worker's `workerData`. */
  workerData: unknown;
  /** Thread name, shown in inspectors and heap snapshots. */
  name: string;
}

/**
 * Starts `./<entry>` relative to `callerUrl` (the caller's `import.meta.url`),
 * with the caller's own file extension, so sources and a compiled build both work.
 */
export function startWorker(entry: string, callerUrl: string, options: StartWorkerOptions): Worker {
  const ext = extname(fileURLToPath(callerUrl));
  const url = new URL(`./${entry}${ext}`, callerUrl);
  if (ext !== '.ts') return new Worker(url, { workerData: options.workerData, name: options.name });
  // Resolved here, where tsx is known to resolve, rather than from the worker's working directory.
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const bootstrap =
    `import(${JSON.stringify(tsxApi)})` +
    `.then(({ register }) => { register(); return import(${JSON.stringify(url.href)}); })`;
  return new Worker(bootstrap, { eval: true, workerData: options.workerData, name: options.name });
}
