/**
 * Multi-threaded tfjs-backend-wasm under Node.
 *
 * tfjs-backend-wasm 4.22 turns threads off under Node (WASM_HAS_MULTITHREAD_SUPPORT
 * is false when IS_NODE). Forcing the flag on is not enough: the backend's
 * Emscripten `locateFile` hands the pthread worker script over as
 * `URL.createObjectURL(new Blob([wasmWorkerContents]))`, and Node's
 * `worker_threads.Worker` refuses `blob:` URLs (ERR_WORKER_PATH). The main
 * script each worker must `importScripts` is a Blob too (the bundled factory's
 * source, which moreover refers to bundle-local names and cannot run on its own).
 *
 * `enableWasmThreads` works around both for the duration of the backend's
 * initialisation, without touching node_modules:
 *
 * - `globalThis.Blob` and `URL.createObjectURL` are patched so that the worker
 *   script is written to a `.cjs` file (with a small prelude, in a private temp
 *   dir removed at exit) and its absolute path is returned instead of a `blob:`
 *   URL;
 * - the main-script Blob becomes a plain `{ gentuneWasmMainScript: path }` marker
 *   naming the package's own Emscripten glue
 *   (`wasm-out/tfjs-backend-wasm-threaded-simd.js`, same build and imports as the
 *   bundled copy); the prelude teaches the worker's `URL.createObjectURL` to turn
 *   that marker back into the path, which its `importScripts` then reads from disk.
 *
 * The .wasm binary is located as usual (dist/tfjs-backend-wasm-threaded-simd.wasm,
 * next to the bundle) and compiled once on the main thread; workers receive the
 * compiled module and the shared memory by message.
 *
 * The backend also caps XNNPACK's pool at half of `os.cpus().length` (it
 * assumes hyperthreading), which would give a 2-vCPU machine a single thread;
 * `os.cpus` is padded while the module starts so that the request is honoured
 * (XNNPACK's own cap of 8 threads, the size of Emscripten's worker pool, stays).
 *
 * `require('worker_threads').Worker` is swapped for a subclass that starts
 * workers without the parent's execArgv (see PthreadWorker).
 *
 * The returned `finish` restores the globals. When the wasm backend came up it
 * also (a) replaces Emscripten's `PThread.allocateUnusedWorker` so that workers
 * spawned later start from the file, not a Blob, and (b) unrefs every pthread
 * worker and makes its `ref()` a no-op: XNNPACK's pool threads park forever,
 * and Emscripten refs a worker while its pthread runs, which would otherwise
 * keep Node alive after the program is done. Work is handed to those threads
 * through shared memory by synchronous kernels, so no event-loop reference is
 * needed for correctness.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os, { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import * as wasm from '@tensorflow/tfjs-backend-wasm';

const MAIN_SCRIPT_MARKER = 'gentuneWasmMainScript';

/**
 * Runs first in each pthread worker, before tfjs' own worker script (which
 * installs Node shims: self, importScripts via fs + indirect eval, ...).
 */
const WORKER_PRELUDE = `"use strict";
// gentune: the main thread sends { ${MAIN_SCRIPT_MARKER}: <absolute path> } instead of a Blob;
// map it back to the path so importScripts (fs.readFileSync + eval) can load it.
{
  const create = URL.createObjectURL;
  URL.createObjectURL = function (obj) {
    if (obj && typeof obj === "object" && typeof obj.${MAIN_SCRIPT_MARKER} === "string") return obj.${MAIN_SCRIPT_MARKER};
    return create.apply(this, arguments);
  };
  const revoke = URL.revokeObjectURL;
  URL.revokeObjectURL = function (url) {
    if (typeof url === "string" && !url.startsWith("blob:")) return;
    return revoke.apply(this, arguments);
  };
}
`;

/** Minimal shape of Emscripten's PThread object and a node worker in it. */
interface NodeWorkerLike {
  ref(): void;
  unref(): void;
  terminate(): Promise<number>;
}
interface PThreadLike {
  unusedWorkers: NodeWorkerLike[];
  runningWorkers: NodeWorkerLike[];
  allocateUnusedWorker: () => void;
}

// The CommonJS exports object, the one tfjs-backend-wasm's bundle `require`s.
const workerThreads = createRequire(import.meta.url)('node:worker_threads') as typeof import('node:worker_threads');
const NodeWorker = workerThreads.Worker;

/**
 * Worker that does not inherit the parent's execArgv. By default a worker gets
 * the parent's flags: `--input-type` (node -e) makes every pthread worker die
 * with ERR_INPUT_TYPE_NOT_ALLOWED, and `--import tsx` would start a TypeScript
 * loader in each of the 8 pool workers. The worker script is plain CommonJS.
 */
class PthreadWorker extends NodeWorker {
  /** Workers started while `enableWasmThreads` is in effect (see its finish). */
  static started: NodeWorkerLike[] | undefined;
  constructor(filename: string | URL, options: import('node:worker_threads').WorkerOptions = {}) {
    super(filename, { execArgv: [], ...options });
    PthreadWorker.started?.push(this);
  }
}

let workerScriptPath: string | undefined;

/** Absolute path of the package's standalone threaded-SIMD Emscripten glue. */
export function wasmThreadedMainScriptPath(): string {
  const require = createRequire(import.meta.url);
  const main = require.resolve('@tensorflow/tfjs-backend-wasm'); // .../dist/tf-backend-wasm.node.js
  const path = join(dirname(main), '..', 'wasm-out', 'tfjs-backend-wasm-threaded-simd.js');
  if (!existsSync(path)) throw new Error(`tfjs-backend-wasm threaded glue not found at ${path}`);
  return path;
}

/**
 * Writes prelude + tfjs worker script to a .cjs file in a private temp dir
 * (mode 0700, removed when the process exits) and returns its absolute path.
 */
function writeWorkerScript(tfjsWorkerSource: string): string {
  if (workerScriptPath) return workerScriptPath;
  const dir = mkdtempSync(join(tmpdir(), 'gentune-wasm-threads-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'tfjs-backend-wasm-threaded-simd.worker.cjs');
  writeFileSync(path, WORKER_PRELUDE + tfjsWorkerSource);
  return (workerScriptPath = path);
}

/** Joins Blob parts when they are all strings (what tfjs passes); undefined otherwise. */
function textOf(parts: unknown): string | undefined {
  if (!Array.isArray(parts) || !parts.every((p) => typeof p === 'string')) return undefined;
  return parts.join('');
}

/**
 * Opts tfjs-backend-wasm into `threads` XNNPACK threads under Node. Call it
 * right before `tf.setBackend('wasm')`; call the returned `finish` once
 * `tf.ready()` has settled (in a `finally`), whether or not init succeeded.
 */
export function enableWasmThreads(threads: number): () => void {
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`wasm threads must be a positive integer, got ${threads}`);
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  wasm.setThreadsCount(threads);

  const mainScript = wasmThreadedMainScriptPath();
  const OriginalBlob = globalThis.Blob;
  const originalCreateObjectURL = URL.createObjectURL;
  const workerBlobs = new WeakMap<object, string>();

  // A constructor returning an object replaces `this`, so `new Blob(...)` yields our marker.
  const PatchedBlob = function (this: unknown, parts?: unknown, options?: BlobPropertyBag) {
    const text = textOf(parts);
    if (text !== undefined && text.startsWith('var WasmBackendModuleThreadedSimd')) {
      return { [MAIN_SCRIPT_MARKER]: mainScript };
    }
    const blob = new OriginalBlob(parts as BlobPart[], options);
    if (text !== undefined && text.includes('WasmBackendModuleThreadedSimd(Module)')) workerBlobs.set(blob, text);
    return blob;
  } as unknown as typeof Blob;
  PatchedBlob.prototype = OriginalBlob.prototype;

  // XNNPACK's pool is capped at os.cpus().length / 2 (it assumes two hyperthreads
  // per core; see num_cores in tfjs-backend-wasm's backend.cc), computed by a static
  // initialiser while the module starts. Report enough CPUs for `threads` meanwhile.
  const originalCpus = os.cpus;
  os.cpus = function () {
    const cpus = originalCpus.call(os);
    while (cpus.length > 0 && cpus.length < 2 * threads) cpus.push(cpus[0]);
    return cpus;
  };

  const started: NodeWorkerLike[] = (PthreadWorker.started = []);
  globalThis.Blob = PatchedBlob;
  // Emscripten reads require("worker_threads").Worker when the module starts.
  workerThreads.Worker = PthreadWorker;
  URL.createObjectURL = function (obj: Blob): string {
    const text = workerBlobs.get(obj);
    if (text !== undefined) return writeWorkerScript(text);
    return originalCreateObjectURL.call(URL, obj);
  };

  let finished = false;
  return () => {
    if (finished) return;
    finished = true;
    globalThis.Blob = OriginalBlob;
    URL.createObjectURL = originalCreateObjectURL;
    os.cpus = originalCpus;
    workerThreads.Worker = NodeWorker;
    // Emscripten also published the class it read as the global `Worker`; publish Node's, as it would have.
    const g = globalThis as { Worker?: unknown };
    if (g.Worker === PthreadWorker) g.Worker = NodeWorker;
    PthreadWorker.started = undefined;
    // If the backend did not come up threaded, workers it may have started must not outlive it.
    let adopted = false;
    try {
      adopted = adoptWorkers();
    } finally {
      if (!adopted) for (const w of started) void w.terminate();
    }
  };
}

/**
 * Emscripten's PThread of the initialised wasm backend, when it runs threaded.
 * Reads the engine's registry: tf.getBackend()/findBackend would start
 * initialising a backend when none is ready.
 */
function activePThread(): PThreadLike | undefined {
  const backend = tf.engine().registry.wasm as unknown as { wasm?: { PThread?: PThreadLike } } | undefined;
  return backend?.wasm?.PThread;
}

function detach(worker: NodeWorkerLike): void {
  worker.unref();
  worker.ref = () => {};
}

/** See the module comment: later workers start from the file, none keeps Node alive. False when wasm is not up threaded. */
function adoptWorkers(): boolean {
  const pthread = activePThread();
  const script = workerScriptPath;
  if (!pthread || !script) return false;
  for (const w of [...pthread.unusedWorkers, ...pthread.runningWorkers]) detach(w);
  pthread.allocateUnusedWorker = () => {
    const worker = new PthreadWorker(script);
    detach(worker);
    pthread.unusedWorkers.push(worker);
  };
  return true;
}

/** Number of pthread workers Emscripten holds for the active wasm backend (0 when not threaded). */
export function wasmWorkerCount(): number {
  const pthread = activePThread();
  return pthread ? pthread.unusedWorkers.length + pthread.runningWorkers.length : 0;
}
