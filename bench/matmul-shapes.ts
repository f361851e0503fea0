/**
 * The wasm matMul costs that shape the model code: transposeA/B flags against
 * explicit transposes, and batched (attention-shaped) against 2D matMuls.
 * Usage: npx tsx bench/matmul-shapes.ts [--backend wasm]. Writes bench/results/matmul-shapes.json.
 */
import * as tf from '@tensorflow/tfjs';
import { mkdirSync, writeFileSync } from 'node:fs';
import { initBackend, type BackendName } from '../src/model/backend.js';
import { printTable } from './lib/random-model.js';

const backendArg = process.argv.indexOf('--backend');
const backend = await initBackend((backendArg > 0 ? process.argv[backendArg + 1] : 'wasm') as BackendName);
const rows: Record<string, string | number>[] = [];

async function time(name: string, f: () => tf.Tensor, flops: number, reps = 3): Promise<void> {
  await tf.tidy(f).data();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) {
    const y = tf.tidy(f);
    await y.data();
    y.dispose();
  }
  const ms = (performance.now() - t0) / reps;
  rows.push({ case: name, ms, 'GFLOP/s': flops / ms / 1e6 });
}

// Training-shaped 2D products (1024 tokens x 768 -> 2304).
const [N, K, M] = [1024, 768, 2304];
const x = tf.randomNormal([N, K]);
const dy = tf.randomNormal([N, M]);
const w = tf.randomNormal([K, M]);
const f2 = 2 * N * K * M;
await time('x @ W', () => tf.matMul(x, w), f2);
await time('x^T @ dy with transposeA', () => tf.matMul(x, dy, true, false), f2, 1);
await time('transpose(x) @ dy', () => tf.matMul(tf.transpose(x), dy), f2);
await time('dy @ W^T with transposeB', () => tf.matMul(dy, w, false, true), f2, 1);
await time('dy @ transpose(W)', () => tf.matMul(dy, tf.transpose(w)), f2);

// Attention-shaped products: 24 (row, head) pairs of [256, 32] x [32, 256].
const [n, T, hd] = [24, 256, 32];
const q = tf.randomNormal([n, T, hd]);
const kT = tf.randomNormal([n, hd, T]);
const fa = 2 * n * T * T * hd;
await time('batched q @ kT [24,256,32]x[24,32,256]', () => tf.matMul(q, kT), fa);
const q0 = tf.randomNormal([T, hd]);
const k0 = tf.randomNormal([hd, T]);
await time('one 2D [256,32]x[32,256] (x24 flops)', () => tf.matMul(q0, k0), fa / n);

printTable(rows);
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/matmul-shapes.json', JSON.stringify({ date: new Date().toISOString(), backend, rows }, null, 2) + '\n');
