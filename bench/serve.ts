/**
 * Serving benchmark over real gRPC on loopback: the real server (startServer
 * over createEngine, whose engine runs in its serving worker thread as in
 * production) in this process, the real client, a closed-loop load of
 * streaming Generate calls. Request lengths vary around --max-new-tokens.
 *
 *   load      aggregate tokens/s, TTFT and inter-token latency p50/p99 at each concurrency (base model)
 *   adapters  the same with every stream on one LoRA adapter, then with 8 adapters spread over the streams,
 *             alternated over --adapter-rounds rounds (the ratio is of the sums)
 *   swaps     N adapter versions published (renamed into the store, as another replica does) under
 *             16-stream load: failed streams, requests that started on a stale version, and the
 *             publish -> visible latency (until the engine resolves the name to the new version), and
 *             whether a Generate sent right after each rename ran on the new version
 *   grpc      batch 1 decode rate: Generate over gRPC vs engine.generate (no RPC) vs the bare decoder,
 *             one request of each in turn, all with the same prompt and sampling
 *
 * Usage: npx tsx bench/serve.ts [--model embedded|gpt2|<dir>] [--scenarios load,adapters,swaps,grpc]
 *   [--concurrency 1,4,16,64] [--duration 4] [--warmup 1] [--max-new-tokens 64] [--prompt-tokens 32]
 *   [--swaps 100] [--swap-interval 100] [--max-batch-size 64] [--backend wasm] [--wasm-threads auto]
 * `embedded` is models/gentune-mini when it is there, else random weights of its shape; `gpt2` is
 * GPT-2-small-shaped random weights (on wasm give it --warmup 10 and a longer --duration: a step takes ~0.1 s).
 * Prints a table per scenario and writes bench/results/serve.json.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Command } from 'commander';
import { pino } from 'pino';
import { GentuneClient } from '../src/client/gentune-client.js';
import { type BackendName, defaultConfig } from '../src/engine/config.js';
import { createEngine } from '../src/engine/create-engine.js';
import type { AdapterRef, Engine, GenerateParams } from '../src/engine/engine-api.js';
import { type Adapter, disposeAdapter } from '../src/model/adapter.js';
import { BatchDecoder } from '../src/model/generation/batch-decoder.js';
import { GenerationSequence } from '../src/model/generation/generation-sequence.js';
import { DEFAULT_SAMPLING } from '../tests/helpers/default-sampling.js';
import { configFromHf, type GptConfig } from '../src/model/gpt-config.js';
import { GptModel } from '../src/model/gpt-model.js';
import { initBackend } from '../src/model/backend.js';
import { autoWasmThreads } from '../src/model/wasm-thread-count.js';
import { startServer } from '../src/server/server.js';
import { type OpenStream, percentiles, runLoad, type LoadResult, type StreamEvent } from './lib/load-generator.js';
import { printTable } from './lib/random-model.js';
import { benchConfig, publishVersion, randomLora, resolveModel, writeAdapters } from './lib/serve-fixtures.js';

const opts = new Command()
  .option('--model <spec>', 'embedded | gpt2 | a model folder', 'embedded')
  .option('--scenarios <list>', 'load,adapters,swaps,grpc', 'load,adapters,swaps,grpc')
  .option('--concurrency <list>', 'concurrent streams', '1,4,16,64')
  .option('--duration <s>', 'measured seconds per point', '4')
  .option('--warmup <s>', 'seconds before each measurement', '1')
  .option('--max-new-tokens <n>', 'mean tokens per request (each draws from [n/2, 3n/2))', '64')
  .option('--prompt-tokens <n>', 'prompt tokens per request', '32')
  .option('--adapter-rounds <n>', 'rounds of (1 adapter, 8 adapters) windows per concurrency in the adapters scenario', '3')
  .option('--swaps <n>', 'adapter versions published in the swap scenario', '100')
  .option('--swap-streams <n>', 'streams during the swaps', '16')
  .option('--swap-interval <ms>', 'pause between a version becoming visible and the next publish', '100')
  .option('--max-batch-size <n>', 'server --max-batch-size', '64')
  .option('--grpc-requests <n>', 'requests per path in the grpc scenario', '40')
  .option('--backend <name>', 'TensorFlow.js backend', 'wasm')
  .option('--wasm-threads <n>', 'server --wasm-threads (auto or a number; the bare decoder uses the same)', 'auto')
  .option('--out <file>', 'results file', 'bench/results/serve.json')
  .parse()
  .opts();

const scenarios = new Set(String(opts.scenarios).split(','));
const adapterRounds = Number(opts.adapterRounds);
const concurrencies = String(opts.concurrency).split(',').map(Number);
const durationMs = Number(opts.duration) * 1000;
const warmupMs = Number(opts.warmup) * 1000;
const maxNewTokens = Number(opts.maxNewTokens);
const promptTokens = Number(opts.promptTokens);
const ADAPTERS = Array.from({ length: 8 }, (_, i) => `mix-${i}`);
const log = (msg: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${msg}`);
/** 1-minute load average at the start and end: other processes share the cores. */
const loadAverage = { start: loadavg()[0], end: NaN };

// --- server ------------------------------------------------------------------
const { dir: modelDir, source, temporary } = await resolveModel(String(opts.model));
const modelConfig: GptConfig = configFromHf(JSON.parse(await readFile(join(modelDir, 'config.json'), 'utf8')));
const dataDir = await mkdtemp(join(tmpdir(), 'gentune-bench-serve-'));
const adaptersDir = join(dataDir, 'adapters');
log(`model ${source} (${modelDir}); data ${dataDir}`);
await writeAdapters(adaptersDir, [...ADAPTERS, 'swap'], modelConfig, 'bench');
const wasmThreads = opts.wasmThreads === 'auto' ? autoWasmThreads(modelConfig) : Number(opts.wasmThreads);
const config = benchConfig(
  { dataDir, model: modelDir, backend: opts.backend as BackendName, wasmThreads },
  { maxBatchSize: Number(opts.maxBatchSize), maxConcurrentStreams: 1024, maxQueue: 1024, maxNewTokens: Math.max(defaultConfig().limits.maxNewTokens, 2 * maxNewTokens) },
);
const serverLog = pino({ level: 'warn' });
const engine: Engine = await createEngine(config, { log: serverLog, adapterBudgetBytes: config.adapterMemory });
const server = await startServer(engine, config, { log: serverLog });
const client = new GentuneClient(`127.0.0.1:${server.port}`, { defaultTimeoutMs: 600_000 });
const info = engine.info();
log(`serving on 127.0.0.1:${server.port}: ${info.model.numParameters} parameters, ${info.backend}, max batch ${config.limits.maxBatchSize}`);

// --- requests ----------------------------------------------------------------
/** New tokens that fit after the prompt in the model's context. */
const contextLeft = info.model.nPositions - promptTokens;
if (contextLeft < 1) throw new Error(`--prompt-tokens ${promptTokens} leaves no room in the context of ${info.model.nPositions} tokens`);
const vocab = Math.min(info.model.vocabSize, info.model.eosTokenId > 0 ? info.model.eosTokenId : info.model.vocabSize);
/** Prompt ids of request k of stream s: different for every request, never <|endoftext|>. */
const promptOf = (s: number, k: number) => Array.from({ length: promptTokens }, (_, i) => (s * 7919 + k * 104729 + i * 31) % vocab);
/**
 * Sampling of request k of stream s. Lengths vary (seeded, uniform in
 * [N/2, 3N/2), mean N = --max-new-tokens): streams of equal-length requests
 * in a closed loop finish and restart in lockstep, which real traffic does
 * not, and which would turn every prefill into one big wave.
 */
const sampling = (s: number, k: number, fixedLength = false) => {
  const seed = s * 1_000_003 + k;
  const u = fixedLength ? 0.5 : ((seed * 2654435761) >>> 0) / 2 ** 32;
  return { maxNewTokens: Math.min(contextLeft, Math.max(1, Math.floor(maxNewTokens * (0.5 + u)))), temperature: 0.8, seed };
};

/** Over gRPC; `adapterOf` picks the adapter ('' = base model). */
const grpcStream = (adapterOf: (s: number, k: number) => string, fixedLength = false): OpenStream =>
  async function* (s, k) {
    const sp = sampling(s, k, fixedLength);
    for await (const m of client.generate({ promptTokenIds: promptOf(s, k), adapter: adapterOf(s, k), sampling: { ...sp, seed: String(sp.seed) } })) {
      yield { tokens: m.tokenIds.length, adapter: m.finishReason !== 0 ? m.adapter : undefined } satisfies StreamEvent;
    }
  };

/** In process, the same request straight to the engine. */
const engineStream = (adapterOf: (s: number, k: number) => AdapterRef | null, fixedLength = false): OpenStream =>
  async function* (s, k) {
    const params: GenerateParams = {
      requestId: `bench-${s}-${k}`,
      prompt: promptOf(s, k),
      adapter: adapterOf(s, k),
      sampling: { ...sampling(s, k, fixedLength), topK: 0, topP: 1, repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0, stop: [] },
      logprobs: false,
      topLogprobs: 0,
    };
    for await (const c of engine.generate(params, new AbortController().signal)) {
      yield { tokens: c.tokenIds.length, adapter: c.finish?.adapter };
    }
  };

const round = (x: number, d = 1) => (Number.isFinite(x) ? Number(x.toFixed(d)) : NaN);
const row = (label: string, r: LoadResult) => ({
  scenario: label,
  streams: r.concurrency,
  'tok/s': round(r.tokensPerSec),
  'tok/cpu-s': round(r.tokensPerCpuSec),
  'ttft p50': round(r.ttftMs.p50),
  'ttft p99': round(r.ttftMs.p99),
  'itl p50': round(r.itlMs.p50),
  'itl p99': round(r.itlMs.p99),
  requests: r.requests,
  failed: r.failed,
});
const summaryOf = (r: LoadResult) => {
  const { records: _records, ...rest } = r;
  return rest;
};
const results: Record<string, unknown> = {};

// --- load: base model ---------------------------------------------------------
if (scenarios.has('load')) {
  const rows: ReturnType<typeof row>[] = [];
  const raw: unknown[] = [];
  for (const c of concurrencies) {
    log(`load: ${c} streams`);
    const r = await runLoad(grpcStream(() => ''), { concurrency: c, durationMs, warmupMs });
    rows.push(row('base', r));
    raw.push(summaryOf(r));
  }
  const at = (n: number, col: 'tok/s' | 'tok/cpu-s') => rows.find((r) => r.streams === n)?.[col];
  printTable(rows);
  const speedup = (col: 'tok/s' | 'tok/cpu-s') => (at(1, col) && at(16, col) ? at(16, col)! / at(1, col)! : undefined);
  if (speedup('tok/s') !== undefined) {
    console.log(`16 streams / 1 stream: ${speedup('tok/s')!.toFixed(2)}x tokens/s, ${speedup('tok/cpu-s')!.toFixed(2)}x tokens per CPU-second (goal >= 6x)`);
  }
  results.load = { rows: raw, speedup16: speedup('tok/s'), speedup16PerCpu: speedup('tok/cpu-s') };
}

// --- adapters: one adapter vs 8 spread over the streams ----------------------------
if (scenarios.has('adapters')) {
  for (const name of ADAPTERS) await client.loadAdapter(name);
  const rows = [];
  const raw: unknown[] = [];
  for (const c of concurrencies) {
    log(`adapters: ${c} streams, ${adapterRounds} round(s)`);
    // Rounds alternate the two cases, so drift in the machine's speed hits both alike; the ratio is of the sums.
    const ones: LoadResult[] = [];
    const mixes: LoadResult[] = [];
    for (let round = 0; round < adapterRounds; round++) {
      ones.push(await runLoad(grpcStream(() => ADAPTERS[0]), { concurrency: c, durationMs, warmupMs }));
      mixes.push(await runLoad(grpcStream((s, k) => ADAPTERS[(s + k) % ADAPTERS.length]), { concurrency: c, durationMs, warmupMs }));
    }
    const sum = (list: LoadResult[], key: 'tokensPerSec' | 'tokensPerCpuSec') => list.reduce((t, r) => t + r[key], 0);
    const ratio = sum(mixes, 'tokensPerSec') / sum(ones, 'tokensPerSec');
    const ratioPerCpu = sum(mixes, 'tokensPerCpuSec') / sum(ones, 'tokensPerCpuSec');
    const perRound = mixes.map((m, i) => `${((100 * m.tokensPerSec) / ones[i].tokensPerSec).toFixed(0)}%`).join(' ');
    const pct = (x: number) => `${(100 * x).toFixed(0)}%`;
    rows.push(
      { ...row('1 adapter', ones[ones.length - 1]), 'vs 1': '', 'vs 1 per cpu-s': '', rounds: '' },
      { ...row('8 adapters', mixes[mixes.length - 1]), 'vs 1': pct(ratio), 'vs 1 per cpu-s': pct(ratioPerCpu), rounds: perRound },
    );
    raw.push({ concurrency: c, rounds: adapterRounds, single: ones.map(summaryOf), mix: mixes.map(summaryOf), ratio, ratioPerCpu });
  }
  printTable(rows);
  console.log('goal: 8-adapter mix >= 85% of single-adapter throughput (vs 1: over all rounds; the table rows are the last round)');
  results.adapters = raw;
}

// --- swaps: versions published under load --------------------------------------------
if (scenarios.has('swaps')) {
  const swaps = Number(opts.swaps);
  const streams = Number(opts.swapStreams);
  const pool: Adapter[] = Array.from({ length: 8 }, (_, i) => randomLora(modelConfig, 5000 + i, 'bench'));
  const published: { version: number; publishedMs: number; visibleMs: number }[] = [];
  /** A Generate started right after each publish: did it run on the new version, and how long after the rename did it end. */
  const next: { onNew: boolean; ms: number }[] = [];
  let publishing = true;
  log(`swaps: ${swaps} versions under ${streams} streams`);
  const load = runLoad(grpcStream(() => 'swap'), { concurrency: streams, durationMs: 1, warmupMs: 0, keepGoing: () => publishing });
  await new Promise((r) => setTimeout(r, warmupMs));
  const t0 = performance.now();
  for (let version = 2; version <= swaps + 1; version++) {
    const publishedMs = await publishVersion(adaptersDir, 'swap', version, pool[version % pool.length], modelConfig);
    const probe = (async () => {
      let label = '';
      for await (const m of client.generate({ promptTokenIds: promptOf(0, version), adapter: 'swap', sampling: { maxNewTokens: 1, temperature: 0, seed: '1' } })) {
        if (m.finishReason !== 0) label = m.adapter;
      }
      next.push({ onNew: Number(label.split('@')[1]) === version, ms: performance.now() - publishedMs });
    })();
    // Visible = the engine resolves "swap" to it: what the next Generate does first.
    for (;;) {
      if ((await engine.listAdapters()).find((a) => a.name === 'swap')?.latestVersion === version) break;
      if (performance.now() - publishedMs > 10_000) throw new Error(`swap@${version} not visible after 10 s`);
      await new Promise((r) => setImmediate(r));
    }
    published.push({ version, publishedMs, visibleMs: performance.now() - publishedMs });
    await probe;
    await new Promise((r) => setTimeout(r, Number(opts.swapInterval)));
  }
  const swapSec = (performance.now() - t0) / 1000;
  publishing = false;
  const r = await load;
  pool.forEach(disposeAdapter);
  const versionOf = (label: string) => Number(label.split('@')[1]);
  // A request that started after a version was visible must not run an older one.
  const stale = r.records.filter((x) => !x.error && published.some((p) => x.startMs > p.publishedMs + p.visibleMs && versionOf(x.adapter) < p.version)).length;
  const served = new Set(r.records.map((x) => x.adapter)).size;
  const visible = percentiles(published.map((p) => p.visibleMs));
  const nextOnNew = next.filter((x) => x.onNew).length;
  const nextMs = percentiles(next.map((x) => x.ms));
  printTable([
    {
      swaps,
      streams,
      seconds: round(swapSec),
      requests: r.requests,
      'failed streams': r.failed,
      'stale starts': stale,
      'versions served': served,
      'visible p50 ms': round(visible.p50),
      'visible p99 ms': round(visible.p99),
      'visible max ms': round(visible.max),
      'next request on new': `${nextOnNew}/${next.length}`,
      'next request done p50 ms': round(nextMs.p50),
    },
  ]);
  console.log('goal: zero failed streams across swaps; publish -> visible < 50 ms');
  results.swaps = {
    swaps,
    streams,
    seconds: swapSec,
    requests: r.requests,
    failed: r.failed,
    errors: r.errors,
    stale,
    versionsServed: served,
    visibleMs: visible,
    nextRequestOnNewVersion: nextOnNew,
    nextRequestDoneMs: nextMs,
  };
}

// --- grpc: Generate over gRPC vs in process vs the bare decoder, batch 1 ----------------------
if (scenarios.has('grpc')) {
  const n = Number(opts.grpcRequests);
  /** Decode rate of a request: tokens after the first over the time they took. */
  const decodeRate = (tokens: number, firstMs: number, endMs: number) => (tokens - 1) / ((endMs - firstMs) / 1000);
  const rate = (r: LoadResult) => {
    const rates = r.records.filter((x) => x.firstTokenMs !== undefined && x.tokens > 1).map((x) => decodeRate(x.tokens, x.firstTokenMs!, x.endMs));
    return percentiles(rates).p50;
  };
  type Path = 'remote' | 'grpc' | 'local' | 'bare';
  const rates: Record<Path, number[]> = { remote: [], grpc: [], local: [], bare: [] };
  /** CPU milliseconds (this process, all threads) and tokens of each path: what RPC costs, whatever else the machine runs. */
  const cpuPerToken: Record<Path, [number, number]> = { remote: [0, 0], grpc: [0, 0], local: [0, 0], bare: [0, 0] };
  // Also a client in a process of its own, as a real one is: on a machine with
  // cores to spare it would cost the server nothing, here it is a third busy
  // process on two cores.
  const remote = spawn(process.execPath, ['--import', 'tsx', 'bench/lib/remote-client.ts', `127.0.0.1:${server.port}`], { stdio: ['pipe', 'pipe', 'inherit'] });
  const remoteLines = createInterface({ input: remote.stdout! })[Symbol.asyncIterator]();
  const remoteOnce = async (): Promise<{ rate: number; tokens: number }> => {
    const sp = sampling(0, 0, true);
    remote.stdin!.write(`${JSON.stringify({ promptTokenIds: promptOf(0, 0), adapter: '', sampling: { ...sp, seed: String(sp.seed) } })}\n`);
    const { value } = await remoteLines.next();
    const r = JSON.parse(String(value)) as { tokens: number; rate: number; error?: string };
    if (r.error) throw new Error(`remote client: ${r.error}`);
    return r;
  };
  // The bare decoder: the model alone on this thread, no scheduler, no RPC, no
  // worker. The engine runs in its own worker thread with its own backend:
  // this thread needs one of its own. Every path runs request 0 of stream 0
  // with the same sampling (seeded, temperature 0.8), so all three decode
  // the same tokens through the same sampler.
  await initBackend(opts.backend as BackendName, { wasmThreads });
  const model = await GptModel.load(modelDir);
  const bareOnce = async (): Promise<{ rate: number; tokens: number }> => {
    const decoder = new BatchDecoder(model);
    try {
      const seq = new GenerationSequence(promptOf(0, 0), { ...DEFAULT_SAMPLING, ...sampling(0, 0, true) }, model.tokenizer, { key: '' }, info.model.nPositions);
      await decoder.add([seq]);
      const first = performance.now();
      while (!seq.finished) await decoder.step();
      return { rate: decodeRate(seq.generated.length, first, performance.now()), tokens: seq.generated.length };
    } finally {
      decoder.dispose();
    }
  };
  log('grpc: batch 1');
  for (let i = -1; i < n; i++) {
    // One request each, alternating, so drift in the machine's speed hits all paths alike.
    const once = async (path: Path) => {
      const cpu = process.cpuUsage();
      let r: { rate: number; tokens: number };
      if (path === 'bare') r = await bareOnce();
      else if (path === 'remote') r = await remoteOnce();
      else {
        let left = 1;
        const open = path === 'grpc' ? grpcStream(() => '', true) : engineStream(() => null, true);
        const load = await runLoad(open, { concurrency: 1, durationMs: 1, warmupMs: 0, keepGoing: () => left-- > 0 });
        r = { rate: rate(load), tokens: load.records.reduce((sum, x) => sum + x.tokens, 0) };
      }
      const used = process.cpuUsage(cpu);
      if (i < 0) return; // warm-up
      cpuPerToken[path][0] += (used.user + used.system) / 1000;
      cpuPerToken[path][1] += r.tokens;
      rates[path].push(r.rate);
    };
    await once('remote');
    await once('grpc');
    await once('local');
    await once('bare');
  }
  remote.stdin!.end();
  model.dispose();
  const p50 = (path: Path) => percentiles(rates[path]).p50;
  const [rg, g, l, bare] = [p50('remote'), p50('grpc'), p50('local'), p50('bare')];
  const cpuMs = (path: Path) => cpuPerToken[path][0] / cpuPerToken[path][1];
  const pct = (a: number, b: number) => `${((100 * a) / b).toFixed(1)}%`;
  printTable([
    { path: 'gRPC Generate, client in another process', 'tok/s': round(rg), 'vs in process': pct(rg, l), 'vs bare': pct(rg, bare), 'cpu ms/token': '' },
    { path: 'gRPC Generate, client in this process', 'tok/s': round(g), 'vs in process': pct(g, l), 'vs bare': pct(g, bare), 'cpu ms/token': round(cpuMs('grpc'), 2) },
    { path: 'engine.generate (no RPC)', 'tok/s': round(l), 'vs in process': '100%', 'vs bare': pct(l, bare), 'cpu ms/token': round(cpuMs('local'), 2) },
    { path: 'bare decoder (no scheduler)', 'tok/s': round(bare), 'vs in process': pct(bare, l), 'vs bare': '100%', 'cpu ms/token': round(cpuMs('bare'), 2) },
  ]);
  console.log('goal: gRPC >= 95% of in process (the client in this process; ratio in the JSON)');
  results.grpc = {
    requests: n,
    grpcTokensPerSec: g,
    inProcessTokensPerSec: l,
    bareDecoderTokensPerSec: bare,
    ratio: g / l,
    remoteGrpcTokensPerSec: rg,
    remoteRatio: rg / l,
    inProcessVsBare: l / bare,
    grpcVsBare: g / bare,
    cpuMsPerToken: { grpc: cpuMs('grpc'), inProcess: cpuMs('local'), bare: cpuMs('bare') },
    remoteRates: rates.remote,
    grpcRates: rates.grpc,
    localRates: rates.local,
    bareRates: rates.bare,
  };
}

client.close();
await server.shutdown(0);
await engine.drain(0);
await rm(dataDir, { recursive: true, force: true });
if (temporary) await rm(temporary, { recursive: true, force: true });
mkdirSync('bench/results', { recursive: true });
loadAverage.end = loadavg()[0];
log(`load average (1 min): ${loadAverage.start.toFixed(2)} at the start, ${loadAverage.end.toFixed(2)} at the end`);
const out = {
  date: new Date().toISOString(),
  loadAverage,
  model: { source, ...info.model },
  backend: info.backend,
  settings: { concurrencies, durationMs, warmupMs, maxNewTokens, promptTokens, maxBatchSize: config.limits.maxBatchSize, prefillChunk: config.limits.prefillChunk, wasmThreads },
  ...results,
};
writeFileSync(String(opts.out), JSON.stringify(out, null, 2) + '\n');
log(`wrote ${opts.out}`);
