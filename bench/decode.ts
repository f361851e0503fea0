/**
 * Decode benchmark: greedy tokens/s at batch 1 and 8 and prefill tokens/s, for
 * the embedded-size model and a GPT-2-small-shaped model (random weights).
 * Usage: npx tsx bench/decode.ts [--models embedded,gpt2] [--tokens 32] [--backend wasm] [--threads 1]
 *   [--out bench/results/decode.json]
 * Writes the results file.
 */
import * as tf from '@tensorflow/tfjs';
import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Command } from 'commander';
import { initBackend, type BackendName } from '../src/model/backend.js';
import { GPT2_SMALL, type GptConfig } from '../src/model/gpt-config.js';
import { GptModel } from '../src/model/gpt-model.js';
import { BatchDecoder } from '../src/model/generation/batch-decoder.js';
import { GenerationSequence } from '../src/model/generation/generation-sequence.js';
import { DEFAULT_SAMPLING } from '../tests/helpers/default-sampling.js';
import { forward } from '../src/model/gpt.js';
import { printTable, randomWeightsOnDevice, silentTokenizer } from './lib/random-model.js';

const EMBEDDED: GptConfig = { nEmbd: 192, nLayer: 4, nHead: 6, nPositions: 256, vocabSize: 2048, layerNormEpsilon: 1e-5, activationFunction: 'gelu_new' };

const opts = new Command()
  .option('--models <list>', 'embedded,gpt2', 'embedded,gpt2')
  .option('--tokens <n>', 'decode steps measured', '32')
  .option('--prompt <n>', 'prompt tokens', '64')
  .option('--backend <name>', 'tfjs backend', 'wasm')
  .option('--threads <n>', 'wasm threads', '1')
  .option('--out <file>', 'results file', 'bench/results/decode.json')
  .parse()
  .opts();

const backend = await initBackend(opts.backend as BackendName, { wasmThreads: Number(opts.threads) });
const steps = Number(opts.tokens);
const promptLen = Number(opts.prompt);
const rows: Record<string, string | number>[] = [];

for (const name of String(opts.models).split(',')) {
  const config = name === 'gpt2' ? GPT2_SMALL : EMBEDDED;
  const model = new GptModel(config, randomWeightsOnDevice(config), silentTokenizer(config.vocabSize), name);
  // Prefill: one forward pass over a prompt, logits for the last position only.
  const ids = Int32Array.from({ length: promptLen }, (_, i) => (i * 7919) % config.vocabSize);
  const prefillOnce = async () => {
    const l = forward(config, model.weights, { batch: 1, length: promptLen, ids, positions: Int32Array.from(ids, (_, i) => i), valid: new Uint8Array(promptLen).fill(1) }, { output: 'last' });
    await l.data();
    l.dispose();
  };
  await prefillOnce();
  let t0 = performance.now();
  const prefillReps = 3;
  for (let i = 0; i < prefillReps; i++) await prefillOnce();
  const prefillTps = (prefillReps * promptLen) / ((performance.now() - t0) / 1000);
  for (const batch of [1, 8]) {
    const decoder = new BatchDecoder(model);
    const params = { ...DEFAULT_SAMPLING, temperature: 0, maxNewTokens: steps + 20, stopAtEos: false };
    const seqs = Array.from({ length: batch }, (_, b) => new GenerationSequence(Array.from({ length: 16 + b }, (_, i) => (i * 31 + b) % config.vocabSize), params, model.tokenizer));
    await decoder.add(seqs);
    // Warm-up: the JIT compiles the host kernels and the sampler over the first steps.
    for (let s = 0; s < 8; s++) await decoder.step();
    t0 = performance.now();
    for (let s = 0; s < steps; s++) await decoder.step();
    const sec = (performance.now() - t0) / 1000;
    decoder.dispose();
    rows.push({ model: name, backend: backend.device, batch, 'decode tok/s': (batch * steps) / sec, 'ms/step': (sec * 1000) / steps, 'prefill tok/s': prefillTps, tensors: tf.memory().numTensors });
  }
  model.dispose();
}
printTable(rows);
mkdirSync(dirname(opts.out), { recursive: true });
writeFileSync(opts.out, JSON.stringify({ date: new Date().toISOString(), backend, steps, promptLen, rows }, null, 2));
