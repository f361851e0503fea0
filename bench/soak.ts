/**
 * Soak over real gRPC on loopback (issue 9): the real server (startServer
 * over createEngine, serving engine in its worker thread as in production)
 * in this process, the real client, N mixed Generate calls from a pool of
 * concurrent callers while a swapper publishes new adapter versions into the
 * store (as another replica does), loads, pins and unloads adapters, and
 * deletes old versions.
 *
 * The mix (seeded): greedy or sampled, 4..16 new tokens, the base model or an
 * adapter (a fixed one, or the one being swapped); a fifth cancelled
 * mid-stream by the client (after 1..3 messages); some with a deadline that
 * expires while they stream. Every call's outcome is checked against what its
 * kind allows: finished with a finish reason (plain calls), CANCELLED on the
 * client's side (cancelled ones), DEADLINE_EXCEEDED or finished (deadline
 * ones). Anything else is an unexpected error.
 *
 * Every --checkpoint calls the load stops, the swapper too, every adapter is
 * unloaded, and the serving worker's tensor count (the gentune_tfjs_tensors
 * gauge, tf.memory().numTensors as the worker last sent it) is read once the
 * worker's gauges have been refreshed: with nothing resident and nothing
 * running it must be the same at every checkpoint. RSS is sampled too (the
 * whole process: main thread, serving worker, wasm heap).
 *
 * Usage: npx tsx bench/soak.ts [--calls 10000] [--concurrency 16] [--checkpoint 1000]
 *   [--cancel-fraction 0.2] [--deadline-fraction 0.05] [--swap-interval 250] [--seed 9]
 *   [--model tiny|embedded|<dir>] [--backend wasm] [--out bench/results/soak.json]
 * Prints a table of the checkpoints and writes the results JSON. Exits 1 when
 * an unexpected error happened or the tensor count at the checkpoints was not flat.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { status as Code } from '@grpc/grpc-js';
import { Command } from 'commander';
import { pino } from 'pino';
import { GentuneClient } from '../src/client/gentune-client.js';
import { Rng } from '../src/common/rng.js';
import type { BackendName } from '../src/engine/config.js';
import { createEngine } from '../src/engine/create-engine.js';
import { disposeAdapter } from '../src/model/adapter.js';
import { configFromHf, type GptConfig } from '../src/model/gpt-config.js';
import { GentuneMetrics } from '../src/observability/metrics.js';
import { startServer } from '../src/server/server.js';
import { printTable } from './lib/random-model.js';
import { benchConfig, publishVersion, randomLora, resolveModel, writeAdapters, writeRandomModel } from './lib/serve-fixtures.js';

const opts = new Command()
  .option('--calls <n>', 'Generate calls in all', '10000')
  .option('--concurrency <n>', 'callers in parallel', '16')
  .option('--checkpoint <n>', 'calls between checkpoints (quiesce, unload adapters, read tensors and RSS)', '1000')
  .option('--cancel-fraction <f>', 'calls the client cancels mid-stream', '0.2')
  .option('--deadline-fraction <f>', 'calls given a deadline that expires while they stream', '0.05')
  .option('--swap-interval <ms>', 'pause between two swapper actions', '250')
  .option('--seed <n>', 'seed of the mix', '9')
  .option('--model <spec>', 'tiny (a seeded random 2-layer model) | embedded | a model folder', 'tiny')
  .option('--backend <name>', 'TensorFlow.js backend', 'wasm')
  .option('--out <file>', 'results file', 'bench/results/soak.json')
  .parse()
  .opts();

const CALLS = Number(opts.calls);
const CONCURRENCY = Number(opts.concurrency);
const CHECKPOINT = Math.max(1, Number(opts.checkpoint));
const CANCEL = Number(opts.cancelFraction);
const DEADLINE = Number(opts.deadlineFraction);
const SWAP_MS = Number(opts.swapInterval);
const log = (msg: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${msg}`);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The shape of `--model tiny`: small enough that 10,000 calls take minutes on two busy cores. */
const TINY: GptConfig = { nEmbd: 64, nLayer: 2, nHead: 4, nPositions: 128, vocabSize: 512, layerNormEpsilon: 1e-5, activationFunction: 'gelu_new' };
const FIXED_ADAPTERS = ['fixed-0', 'fixed-1', 'fixed-2'];
const SWAPPED = 'swapped';

// --- server ------------------------------------------------------------------
const model =
  opts.model === 'tiny'
    ? await (async () => {
        const dir = await writeRandomModel(TINY, 'soak-tiny', 7);
        return { dir, source: 'random weights, 2 layers x 64', temporary: dirname(dir) };
      })()
    : await resolveModel(String(opts.model));
const modelConfig = configFromHf(JSON.parse(await readFile(join(model.dir, 'config.json'), 'utf8')));
const dataDir = await mkdtemp(join(tmpdir(), 'gentune-soak-'));
const adaptersDir = join(dataDir, 'adapters');
await writeAdapters(adaptersDir, [...FIXED_ADAPTERS, SWAPPED], modelConfig, 'soak');
const config = benchConfig(
  { dataDir, model: model.dir, backend: opts.backend as BackendName, maxAdapters: 4, adapterRescanMs: 500 },
  { maxBatchSize: 16, maxConcurrentStreams: 256, maxQueue: 256 },
);
const metrics = new GentuneMetrics({ processMetrics: false });
const serverLog = pino({ level: 'warn' });
const engine = await createEngine(config, { log: serverLog, adapterBudgetBytes: config.adapterMemory, metrics: metrics.engine });
const server = await startServer(engine, config, { log: serverLog, metrics: metrics.rpc });
const client = new GentuneClient(`127.0.0.1:${server.port}`, { defaultTimeoutMs: 60_000 });
const info = engine.info();
log(`model ${model.source}: ${info.model.numParameters} parameters on ${info.backend}; ${CALLS} calls, ${CONCURRENCY} callers`);

async function gauge(name: string): Promise<number> {
  const metric = metrics.registry.getSingleMetric(`gentune_${name}`);
  const value = metric ? (await metric.get()).values[0]?.value : undefined;
  return value ?? Number.NaN;
}

// --- the mix -----------------------------------------------------------------
type Kind = 'plain' | 'cancel' | 'deadline';
interface Outcome {
  kind: Kind;
  /** 'OK' (finished with a finish reason), 'CLIENT_CANCELLED', or the gRPC code's name. */
  code: string;
  tokens: number;
  unexpected?: string;
}

const rng = new Rng(Number(opts.seed));
const vocab = info.model.eosTokenId > 0 ? info.model.eosTokenId : info.model.vocabSize;

function nextCall(): { kind: Kind; request: Parameters<GentuneClient['generate']>[0]; cancelAfter: number; timeoutMs?: number } {
  const u = rng.next();
  const kind: Kind = u < CANCEL ? 'cancel' : u < CANCEL + DEADLINE ? 'deadline' : 'plain';
  const promptLength = 1 + rng.int(24);
  const promptTokenIds = Array.from({ length: promptLength }, () => rng.int(vocab));
  const a = rng.int(5);
  const adapter = a < 2 ? '' : a === 2 ? FIXED_ADAPTERS[rng.int(FIXED_ADAPTERS.length)]! : SWAPPED;
  const greedy = rng.next() < 0.5;
  // Deadline calls ask for the most tokens, so that most of them are still streaming when it passes.
  const maxNewTokens = kind === 'deadline' ? 16 : 4 + rng.int(13);
  return {
    kind,
    request: {
      promptTokenIds,
      adapter,
      sampling: greedy ? { maxNewTokens, temperature: 0 } : { maxNewTokens, temperature: 0.9, topK: 50, topP: 0.95, seed: String(rng.int(1e9)) },
    },
    cancelAfter: 1 + rng.int(3),
    timeoutMs: kind === 'deadline' ? 5 + rng.int(40) : undefined,
  };
}

async function runCall(): Promise<Outcome> {
  const { kind, request, cancelAfter, timeoutMs } = nextCall();
  let tokens = 0;
  let messages = 0;
  let finished = false;
  try {
    for await (const m of client.generate(request, { timeoutMs })) {
      tokens += m.tokenIds.length;
      messages++;
      finished ||= m.finishReason !== 0;
      if (kind === 'cancel' && messages >= cancelAfter && !finished) {
        return { kind, code: 'CLIENT_CANCELLED', tokens }; // leaving the loop cancels the call
      }
      // A finished call is read to its end (the status): leaving the loop at
      // the last message would cancel it, and every cancel is an RST_STREAM,
      // which Node's HTTP/2 server allows 33 a second per connection (after a
      // burst of 1000) before it closes the connection (nghttp2's rapid-reset
      // limit; the server answers GOAWAY with INTERNAL_ERROR).
    }
    if (finished) return { kind, code: 'OK', tokens };
    return { kind, code: 'OK', tokens, unexpected: 'the stream ended without a finish reason' };
  } catch (err) {
    const e = err as { code?: number; details?: string };
    const code = e.code === undefined ? 'NO_CODE' : Code[e.code] ?? String(e.code);
    const expected = kind === 'deadline' && e.code === Code.DEADLINE_EXCEEDED;
    return { kind, code, tokens, unexpected: expected ? undefined : `${code}: ${e.details ?? String(err)}` };
  }
}

// --- adapter swaps -------------------------------------------------------------
let swappedVersion = 1;
const swapper = { actions: 0, published: 0, loads: 0, unloads: 0, deletes: 0, errors: [] as string[] };

async function swapOnce(step: number): Promise<void> {
  try {
    switch (step % 4) {
      case 0: {
        const a = randomLora(modelConfig, 5000 + swappedVersion, 'soak');
        try {
          await publishVersion(adaptersDir, SWAPPED, ++swappedVersion, a, modelConfig);
        } finally {
          disposeAdapter(a);
        }
        swapper.published++;
        break;
      }
      case 1:
        await client.loadAdapter(FIXED_ADAPTERS[step % FIXED_ADAPTERS.length]!, (step & 8) !== 0);
        swapper.loads++;
        break;
      case 2:
        await client.unloadAdapter(FIXED_ADAPTERS[(step + 1) % FIXED_ADAPTERS.length]!);
        swapper.unloads++;
        break;
      default:
        // Old versions go; the latest few stay (calls in flight may be on them).
        if (swappedVersion > 4) {
          await client.deleteAdapter(`${SWAPPED}@${swappedVersion - 4}`).catch((err: { code?: number }) => {
            if (err.code !== Code.NOT_FOUND) throw err;
          });
          swapper.deletes++;
        }
    }
  } catch (err) {
    const e = err as { code?: number; details?: string };
    swapper.errors.push(`${e.code === undefined ? '' : Code[e.code]}: ${e.details ?? String(err)}`);
  }
  swapper.actions++;
}

async function runSwapper(stop: { stopped: boolean }): Promise<void> {
  for (let step = 0; !stop.stopped; step++) {
    await swapOnce(step);
    await sleep(SWAP_MS);
  }
}

// --- checkpoints ---------------------------------------------------------------
interface Sample {
  calls: number;
  seconds: number;
  tensors: number;
  rssMiB: number;
  heapMiB: number;
  /** Tensors while the load ran (sampled every second), max since the previous checkpoint. */
  tensorsUnderLoadMax: number;
}

/** With nothing running: unload every adapter, wait for fresh gauges from the worker, read them. */
async function quiescedTensors(): Promise<number> {
  for (const name of [...FIXED_ADAPTERS, SWAPPED]) await client.unloadAdapter(name);
  // The worker sends its gauges at least once a second; two readings in a row that agree are fresh.
  let last = Number.NaN;
  for (let i = 0; i < 10; i++) {
    await sleep(1100);
    const now = await gauge('tfjs_tensors');
    if (now === last) return now;
    last = now;
  }
  return last;
}

const outcomes: Outcome[] = [];
const samples: Sample[] = [];
const started = performance.now();
let underLoadMax = 0;
const loadSampler = setInterval(() => {
  void gauge('tfjs_tensors').then((t) => (underLoadMax = Math.max(underLoadMax, Number.isFinite(t) ? t : 0)));
}, 1000);

async function checkpoint(): Promise<void> {
  const tensors = await quiescedTensors();
  const mem = process.memoryUsage();
  samples.push({
    calls: outcomes.length,
    seconds: Math.round((performance.now() - started) / 100) / 10,
    tensors,
    rssMiB: Math.round(mem.rss / 1048576),
    heapMiB: Math.round(mem.heapUsed / 1048576),
    tensorsUnderLoadMax: underLoadMax,
  });
  underLoadMax = 0;
  const s = samples.at(-1)!;
  log(`checkpoint: ${s.calls} calls, ${s.tensors} tensors idle (max ${s.tensorsUnderLoadMax} under load), RSS ${s.rssMiB} MiB`);
}

// Warm-up: one call per adapter so that the first checkpoint sees every code path loaded once.
for (const adapter of ['', ...FIXED_ADAPTERS, SWAPPED]) {
  for await (const m of client.generate({ promptTokenIds: [1, 2, 3], adapter, sampling: { maxNewTokens: 4, temperature: 0 } })) void m;
}
await checkpoint();

let issued = 0;
while (issued < CALLS) {
  const phaseEnd = Math.min(CALLS, issued + CHECKPOINT);
  const stop = { stopped: false };
  const swapping = runSwapper(stop);
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (issued < phaseEnd) {
        issued++;
        outcomes.push(await runCall());
      }
    }),
  );
  stop.stopped = true;
  await swapping;
  await checkpoint();
}
clearInterval(loadSampler);
const durationS = (performance.now() - started) / 1000;

// --- report --------------------------------------------------------------------
const byCode: Record<string, number> = {};
const byKind: Record<string, Record<string, number>> = {};
for (const o of outcomes) {
  byCode[o.code] = (byCode[o.code] ?? 0) + 1;
  (byKind[o.kind] ??= {})[o.code] = (byKind[o.kind]![o.code] ?? 0) + 1;
}
const unexpected = outcomes.filter((o) => o.unexpected !== undefined);
const unexpectedSamples = [...new Set(unexpected.map((o) => o.unexpected!))].slice(0, 10);
const tokens = outcomes.reduce((n, o) => n + o.tokens, 0);
const rpc = await metrics.registry.getSingleMetric('gentune_rpc_requests_total')?.get();
const serverGenerateCodes: Record<string, number> = {};
for (const v of rpc?.values ?? []) {
  if (v.labels.method === 'Generate') serverGenerateCodes[String(v.labels.code)] = (serverGenerateCodes[String(v.labels.code)] ?? 0) + v.value;
}
const tensorsIdle = samples.map((s) => s.tensors);
const rss = samples.map((s) => s.rssMiB);
const stats = (xs: number[]) => ({ first: xs[0], last: xs.at(-1), min: Math.min(...xs), max: Math.max(...xs) });
const results = {
  date: new Date().toISOString(),
  model: { source: model.source, ...info.model },
  backend: info.backend,
  settings: { calls: CALLS, concurrency: CONCURRENCY, checkpoint: CHECKPOINT, cancelFraction: CANCEL, deadlineFraction: DEADLINE, swapIntervalMs: SWAP_MS, seed: Number(opts.seed), maxBatchSize: config.limits.maxBatchSize, maxAdapters: config.maxAdapters },
  calls: outcomes.length,
  cancelled: byCode.CLIENT_CANCELLED ?? 0,
  deadlineExceeded: byCode.DEADLINE_EXCEEDED ?? 0,
  completed: byCode.OK ?? 0,
  outcomesByCode: byCode,
  outcomesByKind: byKind,
  serverGenerateCodes,
  unexpectedErrors: unexpected.length,
  unexpectedSamples,
  swapper: { ...swapper, errors: swapper.errors.length, errorSamples: [...new Set(swapper.errors)].slice(0, 10), lastVersion: swappedVersion },
  tensorsIdle: stats(tensorsIdle),
  tensorsUnderLoadMax: Math.max(...samples.map((s) => s.tensorsUnderLoadMax)),
  rssMiB: stats(rss),
  durationSeconds: Math.round(durationS * 10) / 10,
  tokens,
  tokensPerSecond: Math.round(tokens / durationS),
  callsPerSecond: Math.round((outcomes.length / durationS) * 10) / 10,
  loadAverage: (await import('node:os')).loadavg().map((x) => Math.round(x * 100) / 100),
  checkpoints: samples,
};

printTable(samples.map((s) => ({ calls: s.calls, seconds: s.seconds, tensors_idle: s.tensors, tensors_load_max: s.tensorsUnderLoadMax, rss_MiB: s.rssMiB, heap_MiB: s.heapMiB })));
console.log(`\ncalls ${results.calls}: completed ${results.completed}, cancelled ${results.cancelled}, deadline ${results.deadlineExceeded}; by code ${JSON.stringify(byCode)}`);
console.log(`server Generate codes ${JSON.stringify(serverGenerateCodes)}`);
console.log(`unexpected errors ${results.unexpectedErrors}${unexpectedSamples.length ? `: ${unexpectedSamples.join(' | ')}` : ''}`);
console.log(`swapper ${JSON.stringify(results.swapper)}`);
console.log(`tensors idle first/last/max ${results.tensorsIdle.first}/${results.tensorsIdle.last}/${results.tensorsIdle.max}; RSS MiB first/last/max ${results.rssMiB.first}/${results.rssMiB.last}/${results.rssMiB.max}`);
console.log(`${results.durationSeconds} s, ${results.tokensPerSecond} tokens/s, ${results.callsPerSecond} calls/s`);

mkdirSync(dirname(String(opts.out)), { recursive: true });
writeFileSync(String(opts.out), `${JSON.stringify(results, null, 2)}\n`);
log(`wrote ${opts.out}`);

client.close();
await server.shutdown(0);
await engine.drain(0);
await rm(dataDir, { recursive: true, force: true });
if (model.temporary) await rm(model.temporary, { recursive: true, force: true });
const flat = results.tensorsIdle.min === results.tensorsIdle.max;
process.exit(results.unexpectedErrors === 0 && swapper.errors.length === 0 && flat ? 0 : 1);
