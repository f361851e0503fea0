/**
 * The real engine (tiny seeded model, byte-level tokenizer), the real gRPC
 * server and the metrics endpoint, wired as `gentune serve` wires them, on
 * 127.0.0.1 with free ports; plus a little traffic so that every family has
 * samples: a streamed generation, a short fine-tune, a generation through the
 * adapter it published, and a call that fails.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { GentuneClient } from '../../../src/client/gentune-client.js';
import { defaultConfig, type GentuneConfig } from '../../../src/engine/config.js';
import { createEngine } from '../../../src/engine/create-engine.js';
import type { Engine } from '../../../src/engine/engine-api.js';
import type { FineTuneEvent } from '../../../src/gen/gentune/v1/fine_tune.js';
import { saveTokenizer } from '../../../src/model/tokenizer/load-tokenizer.js';
import { type HttpEndpoint, startHttpEndpoint } from '../../../src/observability/http-endpoint.js';
import { GentuneMetrics } from '../../../src/observability/metrics.js';
import { type RunningServer, startServer } from '../../../src/server/server.js';
import { byteTokenizer } from '../../helpers/byte-tokenizer.js';
import { testBackend, TINY, tinyModelFolder } from '../../helpers/tiny-model.js';

export interface LiveServer {
  config: GentuneConfig;
  engine: Engine;
  metrics: GentuneMetrics;
  server: RunningServer;
  http: HttpEndpoint;
  client: GentuneClient;
  /** "http://127.0.0.1:<port>". */
  metricsUrl: string;
  /** Stops everything and removes the temp dirs. */
  close(): Promise<void>;
}

const log = pino({ level: process.env.GENTUNE_TEST_LOG ?? 'silent' });

/** Starts engine, gRPC server and metrics endpoint. */
export async function startLiveServer(): Promise<LiveServer> {
  const model = await tinyModelFolder(TINY, 7);
  await saveTokenizer(model, byteTokenizer());
  const dataDir = await mkdtemp(join(tmpdir(), 'gentune-obs-'));
  const base = defaultConfig();
  const config: GentuneConfig = {
    ...base,
    host: '127.0.0.1',
    port: 0,
    metricsPort: 0,
    model,
    dataDir,
    backend: (await testBackend()) as GentuneConfig['backend'],
    logLevel: 'silent',
    limits: { ...base.limits, maxBatchSize: 4 },
  };
  const metrics = new GentuneMetrics();
  let closing = false;
  const http = await startHttpEndpoint({ host: config.host, port: 0, metrics, ready: () => !closing && engine.isReady(), log });
  const engine = await createEngine(config, { log, metrics: metrics.engine });
  const server = await startServer(engine, config, { log, metrics: metrics.rpc });
  const client = new GentuneClient(`127.0.0.1:${server.port}`, { defaultTimeoutMs: 30_000 });
  return {
    config,
    engine,
    metrics,
    server,
    http,
    client,
    metricsUrl: `http://127.0.0.1:${http.port}`,
    async close() {
      closing = true;
      client.close();
      await server.shutdown(0);
      await engine.drain(0);
      await http.close();
      await rm(dataDir, { recursive: true, force: true });
      await rm(model, { recursive: true, force: true });
    },
  };
}

/** Streams a generation to its end; returns the number of generated tokens. */
export async function streamGeneration(client: GentuneClient, prompt: string, adapter = '', maxNewTokens = 8): Promise<number> {
  let tokens = 0;
  for await (const m of client.generate({ prompt, adapter, sampling: { maxNewTokens, temperature: 0 } })) tokens += m.tokenIds.length;
  return tokens;
}

const EXAMPLES = [
  { prompt: 'Q: cat? A:', completion: ' meow' },
  { prompt: 'Q: dog? A:', completion: ' woof' },
  { prompt: 'Q: cow? A:', completion: ' moo' },
  { prompt: 'Q: owl? A:', completion: ' hoot' },
];

/** Runs a short LoRA fine-tune on inline examples; returns every event of the job. */
export async function fineTune(client: GentuneClient, adapter: string, maxSteps = 3): Promise<FineTuneEvent[]> {
  const events: FineTuneEvent[] = [];
  const stream = client.fineTune({
    adapter,
    examples: EXAMPLES,
    method: { $case: 'lora', value: { r: 2, loraAlpha: 4, loraDropout: 0, targetModules: ['c_attn'] } },
    hyperparameters: { maxSteps, batchSize: 2, learningRate: 1e-2, maxSeqLen: 24, validationSplit: 0.25, evalIntervalSteps: 2, seed: '1' },
  });
  for await (const e of stream) events.push(e);
  return events;
}

/** A generation, a fine-tune, a generation through the new adapter and one failed call. */
export async function driveTraffic(live: LiveServer): Promise<void> {
  await streamGeneration(live.client, 'Hello');
  await fineTune(live.client, 'animals');
  await streamGeneration(live.client, 'Q: cat? A:', 'animals');
  await live.client.generateText({ prompt: 'x', adapter: 'no-such-adapter', sampling: { maxNewTokens: 4 } }).catch(() => undefined);
}

/** GET `url`: status and body. */
export async function get(url: string): Promise<{ status: number; body: string; contentType: string }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.text(), contentType: res.headers.get('content-type') ?? '' };
}
