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
import { DEFAULT_SAMPLING } from '../src/model/generation/sampling-params.js';
import { autoWasmThreads } from '../src/model/wasm-thread-count.js';
import { printTable, silentTokenizer } from './lib/random-model.js';

const llama = (o: Record<string, unknown>) => ({ model_type: 'llama', hidden_act: 'silu', rms_norm_eps: 1e-5, rope_theta: 10000, max_position_embeddings: 2048, ...o });

/** The published shapes (config.json fields that set the size), by model. */
const SHAPES: Record<string, Record<string, unknown>> = {
  'smollm2-135m': llama({ hidden_size: 576, num_hidden_layers: 30, num_attention_heads: 9, num_key_value_heads: 3, intermediate_size: 1536, vocab_size: 49152, tie_word_embeddings: true, rope_theta: 100000, max_position_embeddings: 8192 }),
  'smollm2-360m': llama({ hidden_size: 960, num_hidden_layers: 32, num_attention_heads: 15, num_key_value_heads: 5, intermediate_size: 2560, vocab_size: 49152, tie_word_embeddings: true, rope_theta: 100000, max_position_embeddings: 8192 }),
  'qwen2.5-0.5b': { model_type: 'qwen2', hidden_act: 'silu', hidden_size: 896, num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2, intermediate_size: 4864, vocab_size: 151936, tie_word_embeddings: true, rms_norm_eps: 1e-6, rope_theta: 1000000, max_position_embeddings: 32768, use_sliding_window: false },
  'qwen3-0.6b': { model_type: 'qwen3', hidden_act: 'silu', hidden_size: 1024, head_dim: 128, num_hidden_layers: 28, num_attention_heads: 16, num_key_value_heads: 8, intermediate_size: 3072, vocab_size: 151936, tie_word_embeddings: true, rms_norm_eps: 1e-6, rope_theta: 1000000, max_position_embeddings: 40960, use_sliding_window: false },
  'tinyllama-1.1b': llama({ hidden_size: 2048, num_hidden_layers: 22, num_attention_heads: 32, num_key_value_heads: 4, intermediate_size: 5632, vocab_size: 32000, tie_word_embeddings: false }),
  'llama-3.2-1b': llama({ hidden_size: 2048, num_hidden_layers: 16, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64, intermediate_size: 8192, vocab_size: 128256, tie_word_embeddings: true, rope_theta: 500000, max_position_embeddings: 131072, rope_scaling: { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } }),
  'mistral-7b-v0.3': { model_type: 'mistral', hidden_act: 'silu', hidden_size: 4096, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, intermediate_size: 14336, vocab_size: 32768, tie_word_embeddings: false, rms_norm_eps: 1e-5, rope_theta: 1000000, max_position_embeddings: 32768, sliding_window: null },
};

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
