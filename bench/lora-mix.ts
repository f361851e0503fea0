/**
 * LoRA in a mixed batch: the delta of every adapted projection of one decode
 * step (batch rows spread over N adapters) computed per adapter group
 * (slice + matMul pair + scale per group, one concat) against the stacked
 * path (one matMul pair over the adapters' A and B concatenated along r,
 * a row mask), and (--forward) whole forward passes on one adapter vs N.
 * Usage: npx tsx bench/lora-mix.ts [--models embedded,gpt2] [--batch 16] [--tokens 1] [--adapters 8] [--rank 8] [--forward] [--backend wasm]
 * Writes bench/results/lora-mix.json.
 */
import * as tf from '@tensorflow/tfjs';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Command } from 'commander';
import { initBackend, type BackendName } from '../src/model/backend.js';
import { disposeAdapter } from '../src/model/adapter.js';
import { initLoraAdapter } from '../src/model/adapter-init.js';
import { GPT2_SMALL, type GptConfig } from '../src/model/gpt-config.js';
import { forward, type ForwardInput } from '../src/model/gpt.js';
import { disposeWeights } from '../src/model/gpt-weights.js';
import { GPT2_LORA_TARGETS, groupedLoraDelta, loraDelta, type RowSegment } from '../src/model/lora.js';
import { LoraStackCache, stackedLoraDelta } from '../src/model/lora-stack.js';
import { EMBEDDED } from './lib/serve-fixtures.js';
import { printTable, randomWeightsOnDevice } from './lib/random-model.js';

const opts = new Command()
  .option('--models <list>', 'embedded,gpt2', 'embedded,gpt2')
  .option('--batch <n>', 'rows in the batch', '16')
  .option('--adapters <n>', 'adapters spread over the rows', '8')
  .option('--rank <n>', 'LoRA r of every adapter', '8')
  .option('--tokens <n>', 'tokens per row (1 = a decode step; more = a prefill)', '1')
  .option('--forward', 'also time whole forward passes (one adapter vs N; N takes the stacked path up to STACKED_MAX_ROWS tokens)', false)
  .option('--reps <n>', 'timed repetitions', '20')
  .option('--backend <name>', 'tfjs backend', 'wasm')
  .parse()
  .opts();

const backend = await initBackend(opts.backend as BackendName);
const B = Number(opts.batch);
const N = Number(opts.adapters);
const r = Number(opts.rank);
const T = Number(opts.tokens);
const reps = Number(opts.reps);
const rows: Record<string, string | number>[] = [];

async function timeMs(f: () => tf.Tensor): Promise<number> {
  const warm = f();
  await warm.data();
  warm.dispose();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) {
    const y = f();
    await y.data();
    y.dispose();
  }
  return (performance.now() - t0) / reps;
}

for (const name of String(opts.models).split(',')) {
  const config: GptConfig = name === 'gpt2' ? GPT2_SMALL : EMBEDDED;
  const weights = randomWeightsOnDevice(config);
  const adapters = Array.from({ length: N }, (_, i) =>
    initLoraAdapter(config, { r, loraAlpha: 2 * r, loraDropout: 0, targetModules: [...GPT2_LORA_TARGETS], useRslora: false }, { seed: 10 + i, init: false }),
  );
  // Rows sorted by adapter, as the batch decoder keeps them.
  const per = Math.ceil(B / N);
  const mixed: RowSegment[] = [];
  for (let i = 0, row = 0; row < B; i++, row += per) mixed.push({ start: row, count: Math.min(per, B - row), lora: adapters[i].lora });
  const single: RowSegment[] = [{ start: 0, count: B, lora: adapters[0].lora }];
  const d = config.nEmbd;
  const xs = { c: tf.randomNormal([B * T, d]) as tf.Tensor2D, m: tf.randomNormal([B * T, 4 * d]) as tf.Tensor2D };
  const modules = Array.from({ length: config.nLayer }, (_, l) => GPT2_LORA_TARGETS.map((t) => `${l}.${t}`)).flat();
  const shape = (key: string) => ({ x: key.endsWith('mlp.c_proj') ? xs.m : xs.c, out: key.endsWith('c_attn') ? 3 * d : key.endsWith('c_fc') ? 4 * d : d });
  // The deltas of a whole step, summed into one tensor so that one readback waits for all of them.
  const step = (delta: (x: tf.Tensor2D, key: string, out: number) => tf.Tensor2D | null) => () =>
    tf.tidy(() => tf.addN(modules.map((k) => tf.sum(delta(shape(k).x, k, shape(k).out)!))));
  const cache = new LoraStackCache();
  const grouped = await timeMs(step((x, k, out) => groupedLoraDelta(x, k, mixed, T, out)));
  const stacked = await timeMs(step((x, k) => stackedLoraDelta(x, k, mixed, T, cache)));
  const groupedOne = await timeMs(step((x, k, out) => groupedLoraDelta(x, k, single, T, out)));
  // loraDelta picks the host kernel (kernels/host-lora.ts) on wasm and cpu, up to STACKED_MAX_ROWS rows.
  const hostMix = await timeMs(step((x, k, out) => loraDelta(x, k, mixed, T, out, undefined, cache)));
  const hostOne = await timeMs(step((x, k, out) => loraDelta(x, k, single, T, out, undefined, cache)));
  cache.dispose();
  rows.push(
    { model: name, case: `LoRA deltas as served (loraDelta), ${N} adapters`, ms: hostMix, speedup: `${(stacked / hostMix).toFixed(1)}x vs stacked` },
    { model: name, case: 'LoRA deltas as served (loraDelta), 1 adapter', ms: hostOne, speedup: `${(groupedOne / hostOne).toFixed(1)}x vs 1 adapter's matMul pair` },
  );
  rows.push(
    { model: name, case: `LoRA deltas, ${N} adapters, grouped`, ms: grouped, speedup: '' },
    { model: name, case: `LoRA deltas, ${N} adapters, stacked`, ms: stacked, speedup: `${(grouped / stacked).toFixed(1)}x` },
    { model: name, case: 'LoRA deltas, 1 adapter', ms: groupedOne, speedup: '' },
  );
  if (opts.forward) {
    // Whole forward passes without a KV cache (T tokens per row).
    const input: ForwardInput = {
      batch: B,
      length: T,
      ids: Int32Array.from({ length: B * T }, (_, i) => (i * 7) % config.vocabSize),
      positions: Int32Array.from({ length: B * T }, (_, i) => i % T),
      valid: new Uint8Array(B * T).fill(1),
    };
    const stepCache = new LoraStackCache();
    const fwd = (segments: RowSegment[] | undefined) => () => forward(config, weights, input, { segments, output: 'last', loraStacks: stepCache });
    // Rounds alternate the three cases, so drift in the machine's speed hits all alike; each reports its median.
    const samples: number[][] = [[], [], []];
    for (let round = 0; round < 5; round++) {
      samples[0].push(await timeMs(fwd(undefined)));
      samples[1].push(await timeMs(fwd(single)));
      samples[2].push(await timeMs(fwd(mixed)));
    }
    const [baseMs, oneMs, mixMs] = samples.map((v) => [...v].sort((a, b) => a - b)[2]);
    stepCache.dispose();
    rows.push(
      { model: name, case: 'forward, base model', ms: baseMs, speedup: '' },
      { model: name, case: 'forward, 1 adapter', ms: oneMs, speedup: '' },
      { model: name, case: `forward, ${N} adapters`, ms: mixMs, speedup: `${((100 * oneMs) / mixMs).toFixed(0)}% of 1-adapter rate` },
    );
  }
  adapters.forEach(disposeAdapter);
  xs.c.dispose();
  xs.m.dispose();
  disposeWeights(weights);
}
printTable(rows);
console.log(`batch ${B} x ${T} tokens, r ${r}, ${backend.name}; tensors left: ${tf.memory().numTensors}`);
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/lora-mix.json', JSON.stringify({ date: new Date().toISOString(), backend, batch: B, tokensPerRow: T, adapters: N, rank: r, rows }, null, 2) + '\n');
