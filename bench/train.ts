/**
 * Training throughput of the SFT trainer on random-weight GPT-2 shapes.
 *
 *   npx tsx bench/train.ts [--configs a,b,c] [--methods lora,last_layers] [--steps 5]
 *                          [--batch 8] [--accum 1] [--seq 128] [--loss-fraction 1,0.5]
 *                          [--backend wasm] [--threads 1] [--out bench/results/train.json]
 *
 * Configs: a = d256 x 4 layers, vocab 2048; b = d128 x 4 layers, vocab 50257;
 * c = GPT-2 small's shape (d768 x 12 layers, vocab 50257); s = SmolLM2-135M's
 * shape (Llama family: d576 x 30 layers, 9/3 heads, vocab 49152). Methods:
 * LoRA r=8 (alpha 16, dropout 0.05; attn.c_attn, or q_proj + v_proj for the
 * Llama family) and last_layers=2. Each case runs in a
 * child process (so peak RSS is its own) through `train()` itself: one warmup
 * step, then `--steps` timed steps, reported at the median step (and the
 * fastest, the one least disturbed on a shared machine). Tokens/s counts every input token (batch x
 * seq); `--loss-fraction` (a list) sets the share of them that are loss
 * targets (1 = plain-text SFT, the worst case for the LM head; 0.5 = a
 * completion-only run with prompts as long as completions). Tokens per CPU
 * second are reported too: on a shared machine they show what an idle core
 * would give. Prints a table and writes bench/results/train.json (replacing
 * the entries of the cases run, keeping the others).
 *
 * GPT-2 small at batch 8 x 128 needs more than the 4 GiB a wasm32 heap can
 * hold (the autodiff tape keeps every layer's activations), so run config c
 * as `--batch 2 --accum 4`: the same 1024 tokens per optimizer step.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../src/common/rng.js';
import { initBackend, type BackendName } from '../src/model/backend.js';
import { disposeAdapter } from '../src/model/adapter.js';
import { randomGpt2Tensors } from '../src/model/checkpoint/hf-gpt2-folder.js';
import { GPT2_SMALL, type GptConfig } from '../src/model/gpt-config.js';
import { randomLlamaTensors } from '../src/model/checkpoint/hf-llama-folder.js';
import { llamaConfig, SMOLLM2_135M } from './lib/bench-models.js';
import { disposeWeights, weightsFromHost } from '../src/model/gpt-weights.js';
import type { TokenSequence } from '../src/training/data/token-sequence.js';
import { train } from '../src/training/trainer.js';
import type { TrainMethod } from '../src/training/trainable.js';

const CONFIGS: Record<string, { label: string; config: GptConfig }> = {
  a: { label: 'd256 L4 V2048', config: { ...GPT2_SMALL, nEmbd: 256, nLayer: 4, nHead: 4, nPositions: 256, vocabSize: 2048 } },
  b: { label: 'd128 L4 V50257', config: { ...GPT2_SMALL, nEmbd: 128, nLayer: 4, nHead: 4, nPositions: 256 } },
  c: { label: 'GPT-2 small', config: GPT2_SMALL },
  s: { label: 'SmolLM2-135M', config: llamaConfig(SMOLLM2_135M) },
};

const METHODS: Record<string, { label: string; method: TrainMethod }> = {
  lora: { label: 'LoRA r=8', method: { kind: 'lora', r: 8, alpha: 16, dropout: 0.05, targetModules: ['attn.c_attn'] } },
  last_layers: { label: 'last_layers=2', method: { kind: 'last_layers', numLayers: 2 } },
};

interface CaseResult {
  config: string;
  shape: string;
  method: string;
  backend: string;
  /** Sequences per micro-batch. */
  batch: number;
  /** Micro-batches per optimizer step (gradient accumulation). */
  accumulation: number;
  seqLen: number;
  lossFraction: number;
  steps: number;
  /** Wall seconds of each timed optimizer step. */
  stepSeconds: number[];
  /** CPU seconds of this process in each timed step. */
  stepCpuSeconds: number[];
  /** Median wall seconds per step. */
  secondsPerStep: number;
  /** Input tokens per second at the median step (wall clock). */
  tokensPerSecond: number;
  /** Input tokens per second at the fastest step (wall clock): the least disturbed by other load. */
  bestTokensPerSecond: number;
  /**
   * Input tokens per CPU second of this (single-threaded) process at the
   * median step: near what an otherwise idle core gives, on a shared machine.
   */
  tokensPerCpuSecond: number;
  trainableParameters: number;
  /** Peak resident set of the child process, in MiB. */
  peakRssMiB: number;
  /** tf.memory().numTensors after the first and the last step, and after the run (adapter freed). */
  tensorsAfterFirstStep: number;
  tensorsAfterLastStep: number;
  tensorsBefore: number;
  tensorsAfter: number;
}

/** LoRA on the family's attention projections (GPT-2's fused c_attn; PEFT's Llama default q_proj, v_proj). */
function familyMethod(method: TrainMethod, config: GptConfig): TrainMethod {
  if (method.kind !== 'lora' || config.family !== 'llama') return method;
  return { ...method, targetModules: ['self_attn.q_proj', 'self_attn.v_proj'] };
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

/** `count` random sequences of `seqLen` tokens, the first `1 - lossFraction` of each a prompt. */
function sequences(config: GptConfig, count: number, seqLen: number, lossFraction: number, seed: number): TokenSequence[] {
  const rng = new Rng(seed);
  const promptLen = Math.min(seqLen - 1, Math.round(seqLen * (1 - lossFraction)));
  return Array.from({ length: count }, () => {
    const ids = Int32Array.from({ length: seqLen }, () => rng.int(config.vocabSize));
    const lossMask = new Uint8Array(seqLen);
    lossMask.fill(1, Math.max(1, promptLen));
    return { ids, lossMask };
  });
}

async function runCase(configKey: string, methodKey: string, lossFraction: number): Promise<CaseResult> {
  const backend = await initBackend(flag('backend', 'wasm') as BackendName, { wasmThreads: Number(flag('threads', '1')) });
  const steps = Number(flag('steps', '5'));
  const batch = Number(flag('batch', '8'));
  const accumulation = Number(flag('accum', '1'));
  const seqLen = Number(flag('seq', '128'));
  const { label, config } = CONFIGS[configKey];
  const weights = config.family === 'llama' ? weightsFromHost(config, randomLlamaTensors(config, 1)) : weightsFromHost(config, randomGpt2Tensors(config, 1));
  const data = sequences(config, batch * accumulation * (steps + 1), seqLen, lossFraction, 2);
  const before = tf.memory().numTensors;
  const stepEnds: number[] = [];
  const cpuAt: number[] = [];
  const tensorsAt: number[] = [];
  const cpuSeconds = (): number => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  };
  const result = await train({
    config,
    weights,
    method: familyMethod(METHODS[methodKey].method, config),
    train: data,
    padId: config.vocabSize - 1,
    hyperparameters: {
      maxSteps: steps + 1,
      batchSize: batch,
      gradientAccumulationSteps: accumulation,
      learningRate: 1e-4,
      warmupSteps: 1,
      seed: 1,
    },
    callbacks: {
      onStart: () => {
        stepEnds.push(performance.now());
        cpuAt.push(cpuSeconds());
      },
      onProgress: () => {
        stepEnds.push(performance.now());
        cpuAt.push(cpuSeconds());
        tensorsAt.push(tf.memory().numTensors);
      },
    },
  });
  const trainableParameters = result.trainableParameters;
  disposeAdapter(result.adapter);
  const after = tf.memory().numTensors;
  disposeWeights(weights);
  // Step 1 (warmup: kernel set-up, first allocations) is not timed.
  const stepSeconds = stepEnds.slice(2).map((t, i) => (t - stepEnds[i + 1]) / 1000);
  const stepCpuSeconds = cpuAt.slice(2).map((t, i) => t - cpuAt[i + 1]);
  const tokens = batch * accumulation * seqLen;
  return {
    config: configKey,
    shape: label,
    method: METHODS[methodKey].label,
    backend: backend.device,
    batch,
    accumulation,
    seqLen,
    lossFraction,
    steps,
    stepSeconds,
    stepCpuSeconds,
    secondsPerStep: median(stepSeconds),
    tokensPerSecond: tokens / median(stepSeconds),
    bestTokensPerSecond: tokens / Math.min(...stepSeconds),
    tokensPerCpuSecond: tokens / median(stepCpuSeconds),
    trainableParameters,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    tensorsAfterFirstStep: tensorsAt[0],
    tensorsAfterLastStep: tensorsAt[tensorsAt.length - 1],
    tensorsBefore: before,
    tensorsAfter: after,
  };
}

async function main(): Promise<void> {
  const only = flag('case', '');
  if (only) {
    const [c, m, fraction] = only.split(':');
    process.stdout.write(`RESULT ${JSON.stringify(await runCase(c, m, Number(fraction)))}\n`);
    return;
  }
  const configs = flag('configs', 'a,b').split(',');
  const methods = flag('methods', 'lora,last_layers').split(',');
  const fractions = flag('loss-fraction', '1').split(',');
  const passThrough = ['steps', 'batch', 'accum', 'seq', 'backend', 'threads'].flatMap((f) => {
    const i = process.argv.indexOf(`--${f}`);
    return i >= 0 ? [`--${f}`, process.argv[i + 1]] : [];
  });
  const cases = configs.flatMap((c) => methods.flatMap((m) => fractions.map((f) => [c, m, f] as const)));
  const results: CaseResult[] = [];
  for (const [c, m, fraction] of cases) {
    if (!CONFIGS[c] || !METHODS[m]) throw new Error(`unknown case ${c}:${m}`);
    const id = `${c}:${m}:${fraction}`;
    const child = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--case', id, ...passThrough], {
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });
    const line = child.stdout.split('\n').find((l) => l.startsWith('RESULT '));
    if (!line) throw new Error(`case ${id} failed:\n${child.stderr}`);
    const r = JSON.parse(line.slice(7)) as CaseResult;
    results.push(r);
    console.log(
      `${r.shape.padEnd(15)} ${r.method.padEnd(14)} loss ${String(r.lossFraction).padEnd(4)} ` +
        `${r.batch}x${r.accumulation}x${r.seqLen} ${r.tokensPerSecond.toFixed(0).padStart(5)} tok/s ` +
        `(best ${r.bestTokensPerSecond.toFixed(0).padStart(4)}, ` +
        `${r.tokensPerCpuSecond.toFixed(0).padStart(4)} per cpu-s) ` +
        `${r.secondsPerStep.toFixed(2).padStart(6)} s/step  rss ${r.peakRssMiB.toFixed(0).padStart(5)} MiB  ` +
        `tensors ${r.tensorsAfterFirstStep}->${r.tensorsAfterLastStep} (run ${r.tensorsBefore}->${r.tensorsAfter})  ` +
        `trainable ${r.trainableParameters}`,
    );
  }
  const out = flag('out', join(dirname(fileURLToPath(import.meta.url)), 'results', 'train.json'));
  mkdirSync(dirname(out), { recursive: true });
  // Results of other cases already in the file are kept, so configs can be run one at a time.
  const key = (r: CaseResult): string => `${r.config}:${r.method}:${r.lossFraction}`;
  const previous = existsSync(out) ? ((JSON.parse(readFileSync(out, 'utf8')) as { results?: CaseResult[] }).results ?? []) : [];
  const fresh = new Set(results.map(key));
  const merged = [...previous.filter((r) => !fresh.has(key(r))), ...results];
  const machine = { cpus: cpus().length, cpu: cpus()[0]?.model, loadAverage1m: loadavg()[0] };
  const report = { date: new Date().toISOString(), node: process.version, machine, results: merged };
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`wrote ${out}`);
}

await main();
