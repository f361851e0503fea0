/**
 * Decode benchmark of a SmolLM2-135M-shaped model (Llama family: 30 layers of
 * width 576, 9 query heads over 3 key/value heads, SwiGLU 1536, vocabulary
 * 49152, tied) against GPT-2 small (124M), both from Hugging Face folders of
 * seeded random weights written to a temp dir, on wasm with the decoder's
 * defaults (`auto`: the paged KV cache and the host kernels). Per wasm thread
 * count: prefill tokens/s of one prompt through the batch decoder, and greedy
 * decode tokens/s at each batch size; per model and thread count, the
 * process's peak RSS (loading included).
 *
 * The backend's thread count is fixed per process, so each thread count runs
 * in a child process of its own, which loads both models and alternates them
 * in short blocks (a prefill each, or `--block` decode steps each): a busy
 * machine's swings then hit both alike, and the paired ratio of each block
 * is reported beside the medians. Peak RSS is measured in a child per model
 * (load, a prefill, a few batch-16 steps).
 * Usage: npx tsx bench/llama-decode.ts [--wasm-threads 1,2] [--steps 16] [--block 2] [--prompt 128]
 *   [--prefill-reps 3] [--batches 1,16] [--out bench/results/llama-decode.json]
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { Command } from 'commander';
import { initBackend } from '../src/model/backend.js';
import { parameterCount } from '../src/model/gpt-weights.js';
import { BatchDecoder } from '../src/model/generation/batch-decoder.js';
import { GenerationSequence } from '../src/model/generation/generation-sequence.js';
import { DEFAULT_SAMPLING } from '../tests/helpers/default-sampling.js';
import type { GptModel } from '../src/model/gpt-model.js';
import { BENCH_MODELS, type BenchModel, benchModelConfig, loadBenchModel, writeBenchModel } from './lib/bench-models.js';
import { printTable } from './lib/random-model.js';

const opts = new Command()
  .option('--wasm-threads <list>', 'wasm thread counts, one child process each', '1,2')
  .option('--steps <n>', 'decode steps measured per model and batch size (after 8 warm-up steps)', '16')
  .option('--block <n>', 'decode steps per model before switching to the other', '2')
  .option('--prompt <n>', 'prefill prompt tokens', '128')
  .option('--prefill-reps <n>', 'timed prefills per model (after one warm-up), alternated', '3')
  .option('--batches <list>', 'decode batch sizes', '1,16')
  .option('--out <file>', 'results file', 'bench/results/llama-decode.json')
  .option('--child <what>', '(internal) `timing`, or a model whose memory to measure, in this process')
  .option('--dirs <list>', '(internal) model=folder pairs for --child')
  .parse()
  .opts();

const list = (s: string) => String(s).split(',').map((x) => x.trim()).filter(Boolean);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** One thread count's timings, per model; samples are ms per prefill or per decode step of each block. */
interface Timing {
  threads: number;
  device: string;
  prefillMs: Record<string, number[]>;
  /** Per batch size, per model: ms per step of each block. */
  stepMs: Record<string, Record<string, number[]>>;
  tensorsLeft: number;
}

/** One model's memory: the child's peak RSS over load, a prefill and batch-16 steps. */
interface Memory {
  model: BenchModel;
  threads: number;
  peakRssMiB: number;
  loadS: number;
}

const params = { ...DEFAULT_SAMPLING, temperature: 0, maxNewTokens: 100_000, stopAtEos: false };
const prompt = (n: number, b: number, vocab: number) => Array.from({ length: n }, (_, i) => (i * 7919 + b * 31) % vocab);
const promptLen = Number(opts.prompt);

/** A prefill as serving runs it: the batch decoder's add (one forward pass over the prompt into its cache, one token sampled). */
async function prefillMs(model: GptModel): Promise<number> {
  const decoder = new BatchDecoder(model);
  const start = performance.now();
  await decoder.add([new GenerationSequence(prompt(promptLen, 0, model.config.vocabSize), params, model.tokenizer)]);
  const ms = performance.now() - start;
  decoder.dispose();
  return ms;
}

/** A decoder holding `batch` rows of 16 + b prompt tokens, past 8 warm-up steps (the JIT compiles the host kernels and the sampler). */
async function runningDecoder(model: GptModel, batch: number): Promise<BatchDecoder> {
  const decoder = new BatchDecoder(model);
  await decoder.add(Array.from({ length: batch }, (_, b) => new GenerationSequence(prompt(16 + b, b + 1, model.config.vocabSize), params, model.tokenizer)));
  for (let s = 0; s < 8; s++) await decoder.step();
  return decoder;
}

const dirsOf = (arg: string) => new Map(list(arg).map((kv) => kv.split('=') as [BenchModel, string]));

if (opts.child === 'timing') console.log(JSON.stringify(await timing(dirsOf(opts.dirs), Number(list(opts.wasmThreads)[0]))));
else if (opts.child) console.log(JSON.stringify(await memory(opts.child as BenchModel, dirsOf(opts.dirs).get(opts.child)!, Number(list(opts.wasmThreads)[0]))));
else await main();

async function timing(dirs: Map<BenchModel, string>, threads: number): Promise<Timing> {
  const backend = await initBackend('wasm', { wasmThreads: threads });
  const models = new Map<string, GptModel>();
  for (const [name, dir] of dirs) models.set(name, await loadBenchModel(dir, name));
  const tensors = tf.memory().numTensors;
  const out: Timing = { threads, device: backend.device, prefillMs: {}, stepMs: {}, tensorsLeft: 0 };
  for (const [name, model] of models) {
    await prefillMs(model);
    out.prefillMs[name] = [];
  }
  // Every other round in the other order, so that neither model always runs right after the other.
  const inTurn = <T>(items: Map<string, T>, round: number) => (round % 2 === 0 ? [...items] : [...items].reverse());
  for (let i = 0; i < Number(opts.prefillReps); i++) for (const [name, model] of inTurn(models, i)) out.prefillMs[name].push(await prefillMs(model));
  const block = Number(opts.block);
  for (const batch of list(opts.batches)) {
    const decoders = new Map<string, BatchDecoder>();
    for (const [name, model] of models) decoders.set(name, await runningDecoder(model, Number(batch)));
    const samples: Record<string, number[]> = Object.fromEntries([...models.keys()].map((m) => [m, []]));
    for (let done = 0; done < Number(opts.steps); done += block) {
      for (const [name, decoder] of inTurn(decoders, done / block)) {
        const start = performance.now();
        for (let s = 0; s < block; s++) await decoder.step();
        samples[name].push((performance.now() - start) / block);
      }
    }
    for (const decoder of decoders.values()) decoder.dispose();
    out.stepMs[batch] = samples;
  }
  out.tensorsLeft = tf.memory().numTensors - tensors;
  for (const model of models.values()) model.dispose();
  return out;
}

async function memory(name: BenchModel, dir: string, threads: number): Promise<Memory> {
  await initBackend('wasm', { wasmThreads: threads });
  const t0 = performance.now();
  const model = await loadBenchModel(dir, name);
  const loadS = (performance.now() - t0) / 1000;
  await prefillMs(model);
  const decoder = await runningDecoder(model, 16);
  decoder.dispose();
  model.dispose();
  return { model: name, threads, peakRssMiB: process.resourceUsage().maxRSS / 1024, loadS };
}

function runChild<T>(args: string[]): T {
  const child = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), ...args], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (child.status !== 0) throw new Error(`child ${args.join(' ')} failed (${child.status})\n${child.stderr}`);
  return JSON.parse(child.stdout.trim().split('\n').pop()!) as T;
}

async function main(): Promise<void> {
  const models = [...BENCH_MODELS];
  const threadCounts = list(opts.wasmThreads).map(Number);
  const loadBefore = loadavg();
  let t0 = performance.now();
  const dirs = new Map<BenchModel, string>();
  for (const m of models) dirs.set(m, await writeBenchModel(m));
  console.log(`wrote ${models.join(', ')} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const dirsArg = [...dirs].map(([m, d]) => `${m}=${d}`).join(',');
  const passOn = ['--steps', opts.steps, '--block', opts.block, '--prompt', opts.prompt, '--prefill-reps', opts.prefillReps, '--batches', opts.batches, '--dirs', dirsArg];
  const timings: Timing[] = [];
  const memories: Memory[] = [];
  try {
    for (const threads of threadCounts) {
      t0 = performance.now();
      timings.push(runChild<Timing>(['--child', 'timing', '--wasm-threads', String(threads), ...passOn]));
      console.log(`timing, ${threads} thread(s): ${((performance.now() - t0) / 1000).toFixed(0)} s`);
      for (const m of models) memories.push(runChild<Memory>(['--child', m, '--wasm-threads', String(threads), ...passOn]));
    }
  } finally {
    for (const dir of dirs.values()) await rm(dir, { recursive: true, force: true });
  }
  const [llama, gpt2] = models;
  const rows: Record<string, string | number>[] = [];
  for (const t of timings) {
    const row = (m: string): Record<string, string | number> => {
      const r: Record<string, string | number> = { model: m, params: `${(parameterCount(benchModelConfig(m as BenchModel)) / 1e6).toFixed(1)}M`, threads: t.threads };
      r[`prefill ${promptLen} tok/s`] = (promptLen * 1000) / median(t.prefillMs[m]);
      for (const b of Object.keys(t.stepMs)) r[`b${b} tok/s`] = (Number(b) * 1000) / median(t.stepMs[b][m]);
      r['peak RSS MiB'] = memories.find((x) => x.model === m && x.threads === t.threads)!.peakRssMiB;
      return r;
    };
    rows.push(row(llama), row(gpt2));
    // Paired: each block's rate against the other model's block next to it.
    const ratio: Record<string, string | number> = { model: `${llama} / ${gpt2}`, params: '', threads: t.threads };
    ratio[`prefill ${promptLen} tok/s`] = median(t.prefillMs[gpt2].map((g, i) => g / t.prefillMs[llama][i]));
    for (const b of Object.keys(t.stepMs)) ratio[`b${b} tok/s`] = median(t.stepMs[b][gpt2].map((g, i) => g / t.stepMs[b][llama][i]));
    ratio['peak RSS MiB'] = (row(llama)['peak RSS MiB'] as number) / (row(gpt2)['peak RSS MiB'] as number);
    rows.push(ratio);
  }
  const asRatio = (r: Record<string, string | number>) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, k === 'threads' || typeof v !== 'number' ? v : `${v.toFixed(2)}x`]));
  printTable(rows.map((r) => (String(r.model).includes(' / ') ? asRatio(r) : r)));
  const leaks = timings.filter((t) => t.tensorsLeft !== 0);
  if (leaks.length > 0) console.log(`tensors left behind: ${leaks.map((t) => `${t.tensorsLeft} at ${t.threads} thread(s)`).join(', ')}`);
  const out = {
    date: new Date().toISOString(),
    what: `${llama} (SmolLM2-135M shape) vs ${gpt2} (GPT-2 small), random float32 weights from HF folders, wasm, decoder defaults (paged KV cache, host kernels); both models in one process per thread count, alternated; medians and paired ratios (${llama} rate / ${gpt2} rate)`,
    command: `npx tsx bench/llama-decode.ts --wasm-threads ${opts.wasmThreads} --steps ${opts.steps} --block ${opts.block} --prompt ${opts.prompt} --prefill-reps ${opts.prefillReps} --batches ${opts.batches}`,
    machine: { cpus: cpus().length, loadavgBefore: loadBefore, loadavgAfter: loadavg() },
    rows,
    timings,
    memories,
  };
  mkdirSync(dirname(opts.out), { recursive: true });
  writeFileSync(opts.out, JSON.stringify(out, null, 2) + '\n');
}
