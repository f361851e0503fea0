/**
 * Huge prompts against a small Generate (issue 18): `--floods` Generate calls
 * at once, each with a prompt of `--mb` MB of text (far over any token limit),
 * while one client keeps calling a 3-token Generate in a closed loop until the
 * last flood is refused. The real gRPC server over the real (threaded) engine
 * and the real client, in this process.
 *
 * Reported: when each flood was refused (ms after they were sent), the small
 * Generate's latency alone (median of 5) and during the floods (median, max,
 * count), and how much this process's RSS rose. Before prompts were measured
 * in bytes first, each flood was tokenized in full on the serving thread.
 *
 *   npx tsx bench/prompt-flood.ts [--model embedded|gpt2|<dir>] [--floods 4] [--mb 12] [--backend wasm]
 *
 * Prints one JSON line and writes bench/results/prompt-flood.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { pino } from 'pino';
import { GentuneClient } from '../src/client/gentune-client.js';
import type { BackendName } from '../src/engine/config.js';
import { createEngine } from '../src/engine/create-engine.js';
import { startServer } from '../src/server/server.js';
import { benchConfig, resolveModel } from './lib/serve-fixtures.js';

const opts = new Command()
  .option('--model <spec>', 'embedded | gpt2 | a model folder', 'embedded')
  .option('--floods <n>', 'huge prompts sent at once', '4')
  .option('--mb <n>', 'size of each huge prompt, MB (under --max-message-bytes, 16 MiB)', '12')
  .option('--backend <name>', 'tfjs backend', 'wasm')
  .parse()
  .opts();

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

const model = await resolveModel(opts.model as string);
const dataDir = await mkdtemp(join(tmpdir(), 'gentune-flood-'));
const config = benchConfig({ dataDir, model: model.dir, backend: opts.backend as BackendName });
const engine = await createEngine(config, { log: pino({ level: 'warn' }) });
const server = await startServer(engine, config, { log: pino({ level: 'warn' }) });
const client = new GentuneClient(`127.0.0.1:${server.port}`, { defaultTimeoutMs: 600_000 });
try {
  const small = async () => {
    const t = performance.now();
    await client.generateText({ prompt: 'abc', sampling: { maxNewTokens: 3, temperature: 0 } });
    return performance.now() - t;
  };
  for (let i = 0; i < 3; i++) await small();
  const alone: number[] = [];
  for (let i = 0; i < 5; i++) alone.push(await small());

  const huge = 'x'.repeat(Number(opts.mb) * 1_000_000);
  const rssBefore = process.memoryUsage().rss;
  const sent = performance.now();
  const floods = Array.from({ length: Number(opts.floods) }, async () => {
    try {
      for await (const _ of client.generate({ prompt: huge, sampling: { maxNewTokens: 1 } })) void _;
      return { ms: performance.now() - sent, code: 'OK' };
    } catch (err) {
      return { ms: performance.now() - sent, code: String((err as { details?: string }).details ?? err).slice(0, 120) };
    }
  });
  let done = false;
  const refused = Promise.all(floods).finally(() => (done = true));
  const during: number[] = [];
  while (!done) during.push(await small());
  const outcomes = await refused;
  const result = {
    model: model.source,
    floods: Number(opts.floods),
    promptBytes: huge.length,
    refusedAfterMs: outcomes.map((o) => Math.round(o.ms)),
    refusal: outcomes[0]!.code,
    smallAloneMedianMs: Math.round(median(alone)),
    smallDuring: { count: during.length, medianMs: Math.round(median(during)), maxMs: Math.round(Math.max(...during)) },
    rssRiseMiB: Math.round((process.memoryUsage().rss - rssBefore) / 2 ** 20),
    loadavg1: loadavg()[0],
  };
  console.log(JSON.stringify(result));
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/prompt-flood.json', `${JSON.stringify(result, null, 2)}\n`);
} finally {
  client.close();
  await server.shutdown(0);
  await engine.drain(0);
  await rm(dataDir, { recursive: true, force: true });
  if (model.temporary) await rm(model.temporary, { recursive: true, force: true });
}
