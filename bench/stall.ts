/**
 * Does model work stall the server's main thread? The proof DESIGN.md asks
 * for ("Threads: keep the event loop free"): the real gRPC server
 * (startServer over createEngine) and the real client in this process,
 * `--concurrency` closed-loop streaming Generate calls for `--duration`
 * seconds, with perf_hooks.monitorEventLoopDelay watching this (the main)
 * thread; then the same while a fine-tune job trains. Each engine mode runs
 * in turn on a fresh data dir: `threads` (the default: serving engine and
 * the job each in a worker thread) and `in-process` (`threads: false`:
 * everything on the main thread, for comparison).
 *
 * Reported per mode and phase: the worst event-loop stall (max) and its
 * p99, from the window's start until the phase's last request ended, and
 * how busy the main thread's event loop was (event-loop utilization); TTFT
 * p50/p99 of every request of the phase and inter-token latency p99, as the
 * client sees them; tokens/s in the window; and the training steps finished
 * during the phase, with their mean wall time.
 *
 *   npx tsx bench/stall.ts [--modes threads,in-process] [--model embedded|gpt2|<dir>]
 *     [--concurrency 8] [--duration 10] [--warmup 2] [--max-new-tokens 32] [--prompt-tokens 16]
 *     [--train-batch 4] [--train-seq 64] [--backend wasm]
 *
 * Prints a table and writes bench/results/stall.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { Command } from 'commander';
import { pino } from 'pino';
import { GentuneClient } from '../src/client/gentune-client.js';
import type { BackendName } from '../src/engine/config.js';
import { createEngine } from '../src/engine/create-engine.js';
import { configFromHf } from '../src/model/gpt-config.js';
import { startServer } from '../src/server/server.js';
import { type OpenStream, percentiles, runLoad } from './lib/load-generator.js';
import { printTable } from './lib/random-model.js';
import { benchConfig, resolveModel } from './lib/serve-fixtures.js';

/** Tick period of the event-loop delay monitor, in milliseconds. */
const RESOLUTION_MS = 10;

const opts = new Command()
  .option('--modes <list>', 'threads,in-process', 'threads,in-process')
  .option('--model <spec>', 'embedded | gpt2 | a model folder', 'embedded')
  .option('--concurrency <n>', 'concurrent Generate streams', '8')
  .option('--duration <s>', 'measured window per phase, seconds', '10')
  .option('--warmup <s>', 'load before the window opens, seconds', '2')
  .option('--max-new-tokens <n>', 'tokens per request (mean)', '32')
  .option('--prompt-tokens <n>', 'prompt length, tokens', '16')
  .option('--train-batch <n>', 'fine-tune batch size, sequences', '4')
  .option('--train-seq <n>', 'fine-tune sequence length, tokens', '64')
  .option('--backend <name>', 'tfjs backend', 'wasm')
  .parse()
  .opts();

const concurrency = Number(opts.concurrency);
const durationMs = Number(opts.duration) * 1000;
const warmupMs = Number(opts.warmup) * 1000;
const maxNewTokens = Number(opts.maxNewTokens);
const promptTokens = Number(opts.promptTokens);
const trainBatch = Number(opts.trainBatch);
const trainSeq = Number(opts.trainSeq);
const say = (msg: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${msg}`);

interface PhaseResult {
  mode: string;
  phase: 'serving' | 'serving + fine-tune';
  /** Worst main-thread event-loop delay in the window, milliseconds. */
  stallMaxMs: number;
  stallP99Ms: number;
  stallMeanMs: number;
  /** Share of the phase the main thread's event loop was busy (performance.eventLoopUtilization), 0..1. */
  mainBusy: number;
  ttftP50Ms: number;
  ttftP99Ms: number;
  itlP99Ms: number;
  tokensPerSec: number;
  requests: number;
  failed: number;
  /** Optimizer steps the job finished during the phase, and their mean wall time, seconds. */
  trainSteps?: number;
  secondsPerStep?: number;
}

const { dir: modelDir, source } = await resolveModel(String(opts.model));
const model = configFromHf(JSON.parse(await readFile(join(modelDir, 'config.json'), 'utf8')));
say(`model ${source}: d${model.nEmbd} x ${model.nLayer} layers, vocab ${model.vocabSize}, context ${model.nPositions}`);
const results: PhaseResult[] = [];
for (const mode of String(opts.modes).split(',')) results.push(...(await runMode(mode as 'threads' | 'in-process')));

printTable(results.map((r) => ({
  mode: r.mode,
  phase: r.phase,
  'stall max ms': r.stallMaxMs,
  'stall p99 ms': r.stallP99Ms,
  'main busy %': 100 * r.mainBusy,
  'TTFT p50 ms': r.ttftP50Ms,
  'TTFT p99 ms': r.ttftP99Ms,
  'ITL p99 ms': r.itlP99Ms,
  'tokens/s': r.tokensPerSec,
  requests: `${r.requests}${r.failed ? ` (${r.failed} failed)` : ''}`,
  'train steps': r.trainSteps === undefined ? '' : `${r.trainSteps} x ${r.secondsPerStep!.toFixed(2)} s`,
})));
mkdirSync('bench/results', { recursive: true });
writeFileSync(
  'bench/results/stall.json',
  JSON.stringify(
    {
      date: new Date().toISOString(),
      node: process.version,
      machine: { cpus: cpus().length, cpu: cpus()[0]?.model, loadAverage1m: loadavg()[0] },
      model: { source, nEmbd: model.nEmbd, nLayer: model.nLayer, vocabSize: model.vocabSize, nPositions: model.nPositions },
      load: { concurrency, durationSec: durationMs / 1000, warmupSec: warmupMs / 1000, maxNewTokens, promptTokens, backend: opts.backend },
      fineTune: { method: 'lora r=8 (c_attn)', batchSize: trainBatch, seqLen: trainSeq },
      results,
    },
    null,
    2,
  ) + '\n',
);
say('wrote bench/results/stall.json');

/** Starts engine + server in `mode`, measures both phases, and shuts everything down. */
async function runMode(mode: 'threads' | 'in-process'): Promise<PhaseResult[]> {
  const dataDir = await mkdtemp(join(tmpdir(), 'gentune-bench-stall-'));
  const config = benchConfig(
    { dataDir, model: modelDir, backend: opts.backend as BackendName },
    { maxBatchSize: Math.max(concurrency, trainBatch), maxConcurrentStreams: 1024, maxQueue: 1024, maxNewTokens: 2 * maxNewTokens },
  );
  const log = pino({ level: 'warn' });
  const t0 = performance.now();
  const engine = await createEngine(config, { log, threads: mode === 'threads' });
  const server = await startServer(engine, config, { log });
  const client = new GentuneClient(`127.0.0.1:${server.port}`, { defaultTimeoutMs: 600_000 });
  say(`${mode}: serving on 127.0.0.1:${server.port} (engine up in ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  const vocab = Math.min(model.vocabSize - 1, 255);
  const open: OpenStream = async function* (s, k) {
    const seed = s * 1_000_003 + k;
    const u = ((seed * 2654435761) >>> 0) / 2 ** 32;
    const promptTokenIds = Array.from({ length: promptTokens }, (_, i) => 1 + ((s * 7919 + k * 104729 + i * 31) % vocab));
    const sampling = { maxNewTokens: Math.max(1, Math.floor(maxNewTokens * (0.5 + u))), temperature: 0.8, seed: String(seed) };
    for await (const m of client.generate({ promptTokenIds, sampling })) yield { tokens: m.tokenIds.length };
  };
  const measure = async (phase: PhaseResult['phase'], steps: () => number[]): Promise<PhaseResult> => {
    const histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
    const stepsBefore = steps().length;
    const eluBefore = performance.eventLoopUtilization();
    // The histogram covers the window only, not the warm-up.
    const opening = setTimeout(() => histogram.enable(), warmupMs);
    const load = await runLoad(open, { concurrency, durationMs, warmupMs });
    clearTimeout(opening);
    histogram.disable();
    const elu = performance.eventLoopUtilization(eluBefore);
    const done = steps().slice(stepsBefore);
    // Every request of the phase: a starved server may start none inside the window.
    const ttft = percentiles(load.records.flatMap((r) => (r.firstTokenMs === undefined ? [] : [r.firstTokenMs - r.startMs])));
    // The histogram records the time between its timer's ticks, which includes
    // the tick period itself: the stall is what exceeds it.
    const ms = (ns: number) => Math.max(0, ns / 1e6 - RESOLUTION_MS);
    const result: PhaseResult = {
      mode,
      phase,
      stallMaxMs: ms(histogram.max),
      stallP99Ms: ms(histogram.percentile(99)),
      stallMeanMs: ms(histogram.mean),
      mainBusy: elu.utilization,
      ttftP50Ms: ttft.p50,
      ttftP99Ms: ttft.p99,
      itlP99Ms: load.itlMs.p99,
      tokensPerSec: load.tokensPerSec,
      requests: load.requests,
      failed: load.failed,
    };
    if (phase !== 'serving') {
      result.trainSteps = done.length;
      result.secondsPerStep = done.length > 0 ? done.reduce((a, b) => a + b, 0) / done.length / 1000 : NaN;
    }
    say(`${mode} / ${phase}: stall max ${result.stallMaxMs.toFixed(1)} ms, TTFT p99 ${result.ttftP99Ms.toFixed(1)} ms${load.errors.length ? `, errors ${load.errors.join('; ')}` : ''}`);
    return result;
  };

  try {
    const serving = await measure('serving', () => []);

    // A long job on plain text: every token a loss target, batch x seq tokens a step.
    const text = Array.from({ length: 64 }, (_, i) => ({ text: Array.from({ length: trainSeq }, (_, j) => String.fromCharCode(97 + ((i * 7 + j * 13) % 26))).join('') }));
    const stepTimes: number[] = [];
    let jobId = '';
    let lastStepMs = 0;
    const started = new Promise<void>((resolve, reject) => {
      void (async () => {
        try {
          for await (const e of client.fineTune({
            adapter: `stall-${mode}`,
            examples: text.map((t) => ({ prompt: '', completion: '', messages: [], text: t.text })),
            method: { $case: 'lora', value: { r: 8, loraAlpha: 16, loraDropout: 0, targetModules: ['c_attn'] } },
            hyperparameters: { maxSteps: 100_000, batchSize: trainBatch, maxSeqLen: trainSeq, learningRate: 1e-4 },
          })) {
            jobId = e.jobId;
            const now = performance.now();
            if (e.event?.$case === 'progress') {
              if (lastStepMs > 0) stepTimes.push(now - lastStepMs);
              lastStepMs = now;
              // Steady state: the second step is timed, the first warmed the kernels.
              if (e.event.value.step === 2) resolve();
            }
            if (e.event?.$case === 'failed') throw new Error(`the fine-tune job failed: ${e.event.value.reason}`);
          }
        } catch (err) {
          reject(err);
        }
      })();
    });
    await started;
    const training = await measure('serving + fine-tune', () => stepTimes);
    await client.cancelFineTune(jobId);
    return [serving, training];
  } finally {
    client.close();
    await server.shutdown(0);
    await engine.drain(0);
    await rm(dataDir, { recursive: true, force: true });
  }
}
