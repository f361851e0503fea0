/**
 * GPT-2's tanh GELU written two ways on the serving shapes ([rows, 4d] with
 * d = 192, the embedded model, and 768, GPT-2 small): the textbook form
 * (0.5 x (1 + tanh z)) against the sigmoid form layers.ts uses
 * (x sigmoid(2z), the same function), alternated in one run.
 * Usage: npx tsx bench/gelu.ts [--backend wasm] [--reps 2000]. Writes bench/results/gelu.json.
 */
import * as tf from '@tensorflow/tfjs';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Command } from 'commander';
import { initBackend, type BackendName } from '../src/model/backend.js';
import { gelu } from '../src/model/layers.js';
import { printTable } from './lib/random-model.js';

const opts = new Command().option('--backend <name>', 'backend', 'wasm').option('--reps <n>', 'calls per case', '2000').parse().opts();
const backend = await initBackend(opts.backend as BackendName);
const reps = Number(opts.reps);
const C = Math.sqrt(2 / Math.PI);
/** The textbook form (what layers.ts did before). */
const tanhForm = (x: tf.Tensor2D) => tf.tidy(() => x.mul(tf.tanh(x.add(x.mul(x).mul(x).mul(0.044715)).mul(C)).add(1)).mul(0.5));
const sigmoidForm = (x: tf.Tensor2D) => gelu(x, 'gelu_new');

const rows: Record<string, string | number>[] = [];
for (const width of [768, 3072]) {
  for (const n of [1, 16]) {
    const x = tf.randomNormal([n, width]) as tf.Tensor2D;
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(tanhForm(x), sigmoidForm(x)))));
    const maxDiff = (await diff.data())[0];
    diff.dispose();
    const us = { tanh: 0, sigmoid: 0 };
    for (let round = 0; round < 4; round++) {
      for (const [name, f] of [['tanh', tanhForm], ['sigmoid', sigmoidForm]] as const) {
        const t0 = performance.now();
        for (let i = 0; i < reps / 4; i++) f(x).dispose();
        if (round > 0) us[name] += ((performance.now() - t0) * 1000) / (reps / 4) / 3;
      }
    }
    x.dispose();
    rows.push({ shape: `[${n}, ${width}]`, 'tanh form us': us.tanh, 'sigmoid form us': us.sigmoid, speedup: `${(us.tanh / us.sigmoid).toFixed(1)}x`, 'max |diff|': maxDiff.toExponential(1) });
  }
}
printTable(rows);
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/gelu.json', JSON.stringify({ date: new Date().toISOString(), backend, reps, rows }, null, 2));
