/**
 * Where a decode step's time goes: ms/step at batch 1 and 16 (random
 * weights, 32-token prompts, sampled), with the paged KV cache (attention in
 * WebAssembly) and the tensor KV cache side by side, and the kernel times of
 * one step by kernel name (tf.profile) at the `--profile-batches` sizes. The
 * model is the embedded size (default), GPT-2 small (`--model gpt2`) or
 * SmolLM2-135M's shape (`--model smollm2-135m`, Llama family).
 * Usage: npx tsx bench/step-profile.ts [--model embedded] [--threads 1] [--steps 32] [--rounds 5] [--kv paged,tensor]
 *   [--profile-batches 16] [--top 5] [--out bench/results/step-profile.json]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Command } from 'commander';
import { initBackend } from '../src/model/backend.js';
import { GptModel } from '../src/model/gpt-model.js';
import { BatchDecoder } from '../src/model/generation/batch-decoder.js';
import { GenerationSequence } from '../src/model/generation/generation-sequence.js';
import { DEFAULT_SAMPLING } from '../tests/helpers/default-sampling.js';
import { EMBEDDED } from './lib/serve-fixtures.js';
import { printTable, randomWeightsOnDevice, silentTokenizer } from './lib/random-model.js';
import { BENCH_MODELS, type BenchModel, benchModelInMemory } from './lib/bench-models.js';

const opts = new Command()
  .option('--model <name>', `embedded, ${BENCH_MODELS.join(', ')}`, 'embedded')
  .option('--threads <n>', 'wasm threads', '1')
  .option('--kv <list>', 'KV caches compared', 'paged,tensor')
  .option('--profile-batches <list>', 'batch sizes whose kernels are profiled (last round)', '16')
  .option('--top <n>', 'kernels listed per profile', '5')
  .option('--steps <n>', 'decode steps measured (after 32 warm-up steps)', '32')
  .option('--rounds <n>', 'rounds over the cases (the median is reported)', '5')
  .option('--out <file>', 'results file', 'bench/results/step-profile.json')
  .parse()
  .opts();

const backend = await initBackend('wasm', { wasmThreads: Number(opts.threads) });
const model =
  opts.model === 'embedded'
    ? new GptModel(EMBEDDED, randomWeightsOnDevice(EMBEDDED), silentTokenizer(EMBEDDED.vocabSize), 'embedded')
    : benchModelInMemory(opts.model as BenchModel);
const V = model.config.vocabSize;
const steps = Number(opts.steps);
const rows: Record<string, string | number>[] = [];
const kvs = String(opts.kv).split(',') as ('paged' | 'tensor')[];
const profiled = String(opts.profileBatches).split(',').map(Number);
const CASES = [1, 16].flatMap((batch) => kvs.map((kv) => [kv, batch] as const));
const rounds = Number(opts.rounds);
const samples = CASES.map(() => [] as number[]);
/** ms per decode step of one case (after 32 warm-up steps). */
async function measure(kvCache: 'paged' | 'tensor', batch: number, profile: boolean): Promise<{ ms: number; kernels?: Record<string, string | number> }> {
  const decoder = new BatchDecoder(model, { kvCache });
  const params = { ...DEFAULT_SAMPLING, maxNewTokens: 200, stopAtEos: false };
  const prompt = (b: number) => Array.from({ length: 32 }, (_, i) => (i * 31 + b) % V);
  await decoder.add(Array.from({ length: batch }, (_, b) => new GenerationSequence(prompt(b), params, model.tokenizer)));
  for (let i = 0; i < 32; i++) await decoder.step();
  const t0 = performance.now();
  for (let s = 0; s < steps; s++) await decoder.step();
  const ms = (performance.now() - t0) / steps;
  let kernels: Record<string, string | number> | undefined;
  if (profile) {
    const p = await tf.profile(async () => void (await decoder.step()));
    const byKernel = new Map<string, number>();
    for (const k of p.kernels) byKernel.set(k.name, (byKernel.get(k.name) ?? 0) + Number(k.kernelTimeMs));
    const count = new Map<string, number>();
    for (const k of p.kernels) count.set(k.name, (count.get(k.name) ?? 0) + 1);
    const total = [...byKernel.values()].reduce((a, b) => a + b, 0);
    kernels = {
      kernels: p.kernels.length,
      'kernel ms': total,
      'top kernels (ms)': [...byKernel]
        .sort((a, b) => b[1] - a[1])
        .slice(0, Number(opts.top))
        .map(([n, t]) => `${n} ${t.toFixed(1)} (x${count.get(n)})`)
        .join(', '),
    };
  }
  decoder.dispose();
  return { ms, kernels };
}
// Rounds alternate the cases, so drift in the machine's speed hits all alike; each case reports its median.
const profiles = new Map<number, Record<string, string | number>>();
for (let round = 0; round < rounds; round++) {
  for (const [i, [kvCache, batch]] of CASES.entries()) {
    const r = await measure(kvCache, batch, round === rounds - 1 && profiled.includes(batch));
    samples[i].push(r.ms);
    if (r.kernels) profiles.set(i, r.kernels);
  }
}
for (const [i, [kvCache, batch]] of CASES.entries()) {
  const sorted = [...samples[i]].sort((a, b) => a - b);
  const msPerStep = sorted[Math.floor(sorted.length / 2)];
  rows.push({ 'kv cache': kvCache, batch, 'ms/step': msPerStep, 'tok/s': (batch * 1000) / msPerStep, ...profiles.get(i) });
}
model.dispose();
const single = (kv: string) => rows.find((r) => r['kv cache'] === kv && r.batch === 1)!['tok/s'] as number;
printTable(
  rows.map((r) => ({
    'kv cache': r['kv cache'],
    batch: r.batch,
    'ms/step': r['ms/step'],
    'tok/s': r['tok/s'],
    'vs 1 row': `${((r['tok/s'] as number) / single(r['kv cache'] as string)).toFixed(2)}x`,
  })),
);
for (const r of rows.filter((x) => x.kernels)) {
  console.log(`one ${r.batch}-row step, ${r['kv cache']} cache: ${r.kernels} kernels, ${(r['kernel ms'] as number).toFixed(1)} ms in them; ${r['top kernels (ms)']}`);
}
mkdirSync(dirname(opts.out), { recursive: true });
writeFileSync(opts.out, JSON.stringify({ date: new Date().toISOString(), model: opts.model, backend, steps, rounds, samples, rows }, null, 2));
