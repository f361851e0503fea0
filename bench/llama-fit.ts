/**
 * Which Llama-family shapes fit on the wasm backend: each model's published
 * config.json shape (seeded random float32 weights, no download) is loaded in
 * a child process of its own, prefills 16 tokens and decodes 16 greedily at
 * batch 1. A shape whose weights exceed the 4 GiB wasm heap is refused at
 * load, before any weight is made (the message the server gives); the rest
 * report load time, decode tokens/s and peak RSS.
 * Usage: npx tsx bench/llama-fit.ts [--models smollm2-135m,...] [--threads auto] [--out bench/results/llama-fit.json]
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { initBackend } from '../src/model/backend.js';
import { configFromHf } from '../src/model/gpt-config.js';
import type { LlamaConfig } from '../src/model/llama-config.js';
import { GptModel } from '../src/model/gpt-model.js';
import { assertWeightsFit, parameterCount, weightsFromHost } from '../src/model/gpt-weights.js';
import { randomLlamaTensors } from '../src/model/checkpoint/hf-llama-folder.js';
import { BatchDecoder } from '../src/model/generation/batch-decoder.js';
import { GenerationSequence } from '../src/model/generation/generation-sequence.js';
import { DEFAULT_SAMPLING } from '../tests/helpers/default-sampling.js';
import { autoWasmThreads } from '../src/model/wasm-thread-count.js';
import { LLAMA_SHAPES as SHAPES } from './lib/bench-models.js';
import { printTable, silentTokenizer } from './lib/random-model.js';

const opts = new Command()
  .option('--models <list>', 'shapes to try', Object.keys(SHAPES).join(','))
  .option('--threads <n>', 'wasm threads (auto: as the server picks)', 'auto')
  .option('--one <name>', '(internal) measure one shape in this process and print its JSON')
  .option('--out <file>', 'results file', 'bench/results/llama-fit.json')
  .parse()
  .opts();

interface Fit {
  model: string;
  parameters: number;
  'weights GiB': number;
  fits: string;
  'load s'?: number;
  'decode tok/s'?: number;
  'peak RSS MiB'?: number;
}

/** Loads one shape on wasm and decodes; the weights are made only if the size check passes. */
async function measure(name: string): Promise<Fit> {
  const config = configFromHf(SHAPES[name], `${name} config.json`) as LlamaConfig;
  const parameters = parameterCount(config);
  const row: Fit = { model: name, parameters, 'weights GiB': Number(((parameters * 4) / 1024 ** 3).toFixed(2)), fits: 'yes' };
  const threads = opts.threads === 'auto' ? autoWasmThreads(config) : Number(opts.threads);
  await initBackend('wasm', { wasmThreads: threads });
  const t0 = performance.now();
  let model: GptModel;
  try {
    // The server's check, before a weight is made (a 7B model's random weights alone take minutes).
    assertWeightsFit(config);
    model = new GptModel(config, weightsFromHost(config, randomLlamaTensors(config, 1)), silentTokenizer(config.vocabSize), name);
  } catch (err) {
    return { ...row, fits: `no: ${(err as Error).message.replace(/^.*?: the model/, 'the model')}` };
  }
  row['load s'] = Number(((performance.now() - t0) / 1000).toFixed(1));
  const decoder = new BatchDecoder(model);
  const seq = new GenerationSequence(Array.from({ length: 16 }, (_, i) => (i * 31) % config.vocabSize), { ...DEFAULT_SAMPLING, temperature: 0, maxNewTokens: 40, stopAtEos: false }, model.tokenizer);
  await decoder.add([seq]);
  for (let s = 0; s < 2; s++) await decoder.step();
  const t1 = performance.now();
  const steps = 16;
  for (let s = 0; s < steps; s++) await decoder.step();
  row['decode tok/s'] = Number((steps / ((performance.now() - t1) / 1000)).toFixed(1));
  decoder.dispose();
  model.dispose();
  row['peak RSS MiB'] = Math.round(process.resourceUsage().maxRSS / 1024);
  return row;
}

if (opts.one) {
  console.log(`FIT ${JSON.stringify(await measure(String(opts.one)))}`);
} else {
  const rows: Fit[] = [];
  const script = fileURLToPath(import.meta.url);
  for (const name of String(opts.models).split(',')) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', script, '--one', name, '--threads', String(opts.threads)], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
    const line = r.stdout.split('\n').find((l) => l.startsWith('FIT '));
    rows.push(line ? (JSON.parse(line.slice(4)) as Fit) : { model: name, parameters: 0, 'weights GiB': 0, fits: `no: the process ended with ${r.status ?? r.signal}: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}` });
  }
  mkdirSync(dirname(opts.out), { recursive: true });
  writeFileSync(opts.out, JSON.stringify({ date: new Date().toISOString(), threads: opts.threads, rows }, null, 2));
  const columns = ['model', 'parameters', 'weights GiB', 'load s', 'decode tok/s', 'peak RSS MiB', 'fits'] as const;
  printTable(rows.map((r) => Object.fromEntries(columns.map((c) => [c, r[c] ?? '-']))));
}
