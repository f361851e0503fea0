/**
 * Multi-threaded wasm under Node (src/model/wasm-threads.ts). The backend is
 * chosen once per process, so each configuration runs in its own child node
 * process; the child must also exit by itself (pthread workers must not keep
 * it alive).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { TINY } from '../../helpers/tiny-model.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const mod = (path: string) => JSON.stringify(pathToFileURL(join(ROOT, path)).href);

/** ESM source run by the child with T threads; prints one JSON line and returns without process.exit. */
const CHILD = `
import os from 'node:os';
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import * as wasm from '@tensorflow/tfjs-backend-wasm';
const { initBackend } = await import(${mod('src/model/backend.ts')});
const { wasmWorkerCount } = await import(${mod('src/model/wasm-threads.ts')});
const { forward } = await import(${mod('src/model/gpt.ts')});
const { TINY, tinyWeights } = await import(${mod('tests/helpers/tiny-model.ts')});
const T = Number(process.env.WASM_THREADS);
const workerThreads = createRequire(import.meta.url)('node:worker_threads');
const before = { blob: globalThis.Blob, url: URL.createObjectURL, cpus: os.cpus, worker: workerThreads.Worker };
const info = await initBackend('wasm', { wasmThreads: T });
const restored = globalThis.Blob === before.blob && URL.createObjectURL === before.url && os.cpus === before.cpus && workerThreads.Worker === before.worker;
const rnd = (shape, seed) => tf.randomUniform(shape, -1, 1, 'float32', seed);
const matmul = Array.from(await tf.matMul(rnd([192, 256], 1), rnd([256, 320], 2)).data());
const softmax = Array.from(await tf.softmax(rnd([16, 300], 3).mul(4)).data());
const ids = [72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 256, 3];
const input = { batch: 1, length: ids.length, ids: Int32Array.from(ids), positions: Int32Array.from(ids, (_, i) => i), valid: new Uint8Array(ids.length).fill(1) };
const weights = tinyWeights(TINY, 11);
const logits = Array.from(await forward(TINY, weights, input).data());
// The host kernels and the paged KV cache (decode path) on the threaded build too.
const { createKvCache } = await import(${mod('src/model/kv-cache.ts')});
const cache = createKvCache(TINY, 1, 'paged');
const decode = Array.from(await forward(TINY, weights, input, { cache, output: 'last' }).data());
const next = { batch: 1, length: 1, ids: Int32Array.from([5]), positions: Int32Array.from([ids.length]), valid: new Uint8Array([1]) };
decode.push(...(await forward(TINY, weights, next, { cache, output: 'last' }).data()));
console.log(JSON.stringify({ backend: tf.getBackend(), device: info.device, threads: wasm.getThreadsCount(), workers: wasmWorkerCount(), restored, matmul, softmax, logits, decode }));
`;

/** How long a child may live after printing its result. */
const LINGER_MS = 15_000;

interface ChildResult {
  backend: string;
  device: string;
  threads: number;
  workers: number;
  restored: boolean;
  matmul: number[];
  softmax: number[];
  logits: number[];
  decode: number[];
}

/** Runs CHILD with `threads`; resolves with its output, exit code and how long it lingered after printing. */
function runChild(threads: number, timeoutMs = 120_000): Promise<{ result: ChildResult; code: number | null; signal: NodeJS.Signals | null; lingerMs: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHILD], {
      cwd: ROOT,
      env: { ...process.env, WASM_THREADS: String(threads) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let printedAt: number | undefined;
    const fail = (why: string) => {
      child.kill('SIGKILL');
      reject(new Error(`child (${threads} threads) ${why}; stdout=${stdout.slice(0, 300)} stderr=${stderr.slice(-2000)}`));
    };
    const timer = setTimeout(() => fail(`did not finish within ${timeoutMs} ms`), timeoutMs);
    let lingerTimer: NodeJS.Timeout | undefined;
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (printedAt === undefined && stdout.includes('\n')) {
        printedAt = Date.now();
        // Printing is the child's last act: a live pthread worker would keep it running.
        lingerTimer = setTimeout(() => fail(`did not exit within ${LINGER_MS} ms of printing its result`), LINGER_MS);
      }
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(lingerTimer);
      const line = stdout.trim().split('\n').pop() ?? '';
      try {
        resolve({ result: JSON.parse(line) as ChildResult, code, signal, lingerMs: Date.now() - (printedAt ?? Date.now()), stderr });
      } catch {
        reject(new Error(`child (${threads} threads) exited ${code ?? signal} without a result; stderr=${stderr.slice(-2000)}`));
      }
    });
  });
}

function maxAbsDiff(a: number[], b: number[]): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

test('wasm with 2 threads matches 1 thread and the process exits by itself', { timeout: 300_000 }, async () => {
  const one = await runChild(1);
  const two = await runChild(2);
  for (const [n, run] of [[1, one], [2, two]] as const) {
    assert.equal(run.code, 0, `child with ${n} thread(s) exited ${run.code ?? run.signal}: ${run.stderr.slice(-2000)}`);
    assert.equal(run.result.backend, 'wasm');
    assert.equal(run.result.threads, n);
    assert.ok(run.result.restored, `globals patched during init are restored (${n} thread(s))`);
    assert.ok(run.lingerMs < LINGER_MS, `child with ${n} thread(s) lingered ${run.lingerMs} ms after its output`);
  }
  assert.equal(one.result.workers, 0);
  assert.ok(two.result.workers >= 1, `expected pthread workers, got ${two.result.workers}`);
  assert.match(two.result.device, /2 thread\(s\)/);
  assert.equal(one.result.decode.length, 2 * TINY.vocabSize, 'prefill and one decode step');
  for (const key of ['matmul', 'softmax', 'logits', 'decode'] as const) {
    const diff = maxAbsDiff(one.result[key], two.result[key]);
    assert.ok(diff <= 1e-6, `${key}: max |2 threads - 1 thread| = ${diff}`);
  }
});
