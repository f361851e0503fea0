/**
 * End to end with a real Prometheus: `gentune serve` (bin/gentune.js, the
 * real engine on a tiny seeded model) on 127.0.0.1, Debian's `prometheus`
 * scraping its /metrics every second and loading the alert rules of
 * deploy/k8s; a streamed generation and a short fine-tune through the real
 * client; then Prometheus' query API must show a generated-token rate > 0, TTFT
 * quantiles, and the job's steps, evaluate every dashboard query and every
 * alert rule without error; and SIGTERM must drain and stop the server.
 *
 * Skipped (with a message) where /usr/bin/prometheus is absent: CI installs
 * the Debian package `prometheus`.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { dump } from 'js-yaml';
import { GentuneClient } from '../../src/client/gentune-client.js';
import { saveTokenizer } from '../../src/model/tokenizer/load-tokenizer.js';
import { byteTokenizer } from '../helpers/byte-tokenizer.js';
import { TINY, tinyModelFolder } from '../helpers/tiny-model.js';
import { dashboardExpressions, expandGrafanaVariables, PROMETHEUS, ROOT, ruleGroups } from '../unit/observability/promql.js';
import { fineTune, streamGeneration } from '../unit/observability/live-server.js';
import { requirePeer, skipWithoutPeer } from '../helpers/test-peer.js';

const missing = !existsSync(PROMETHEUS) && `${PROMETHEUS} not found: install the Debian package "prometheus" to run this test`;
const skip = skipWithoutPeer(missing);

/** A child process with its stdout lines kept (pino JSON lines for the server). */
interface Child {
  proc: ChildProcess;
  lines: string[];
  exited: Promise<number | null>;
}

function start(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Child {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  const lines: string[] = [];
  for (const stream of [proc.stdout!, proc.stderr!]) createInterface({ input: stream }).on('line', (l) => lines.push(l));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  return { proc, lines, exited };
}

/** Stops a child by its PID: SIGTERM, then SIGKILL after `graceMs`. */
async function stop(child: Child | undefined, graceMs = 5000): Promise<void> {
  if (!child || child.proc.exitCode !== null || child.proc.signalCode !== null) return;
  child.proc.kill('SIGTERM');
  const timer = setTimeout(() => child.proc.kill('SIGKILL'), graceMs);
  await child.exited;
  clearTimeout(timer);
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000, everyMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The address a pino line announces, e.g. "gRPC server listening". */
function announced(child: Child, msg: string): string | undefined {
  for (const line of child.lines) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line) as { msg?: string; address?: string };
    if (entry.msg === msg && entry.address) return entry.address;
  }
  return undefined;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

let dir: string;
let server: Child | undefined;
let prometheus: Child | undefined;
let client: GentuneClient | undefined;
let promUrl: string;
/** The OpenAI HTTP API's base URL. */
let openaiUrl: string;

/** Instant query through Prometheus' HTTP API; throws on a query error. */
async function query(expr: string): Promise<Sample[]> {
  const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = (await res.json()) as { status: string; error?: string; data: { resultType: string; result: Sample[] } };
  if (body.status !== 'success') throw new Error(`${expr}: ${body.error}`);
  return body.data.resultType === 'vector' ? body.data.result : [];
}

/** The first value of a query, once it has one that passes `ok`. */
function valueOf(expr: string, ok: (v: number) => boolean = Number.isFinite): () => Promise<number | undefined> {
  return async () => {
    const v = (await query(expr)).map((s) => Number(s.value[1])).find(ok);
    return v;
  };
}

before(async () => {
  if (skip) return;
  requirePeer(missing);
  dir = await mkdtemp(join(tmpdir(), 'gentune-e2e-'));
  const model = await tinyModelFolder(TINY, 7);
  await saveTokenizer(model, byteTokenizer());
  // --http-port 0 turns the API off, so it gets a port found free here.
  const httpPort = await freePort();
  openaiUrl = `http://127.0.0.1:${httpPort}/v1`;
  server = start(process.execPath, [
    join(ROOT, 'bin/gentune.js'), 'serve',
    '--host', '127.0.0.1', '--port', '0', '--metrics-port', '0', '--http-port', String(httpPort),
    '--model', model, '--data-dir', join(dir, 'data'),
    '--backend', process.env.GENTUNE_TEST_BACKEND ?? 'wasm',
    '--log-level', 'info', '--max-batch-size', '4', '--grace-ms', '3000',
  ]);
  const grpcAddress = await until('the gRPC server', async () => announced(server!, 'gRPC server listening'), 90_000);
  await until('the OpenAI HTTP API', async () => announced(server!, 'OpenAI HTTP API listening'), 30_000);
  const metricsAddress = announced(server, 'metrics endpoint listening');
  assert.ok(metricsAddress, 'the metrics endpoint starts before the gRPC server');
  client = new GentuneClient(grpcAddress, { defaultTimeoutMs: 30_000 });

  const port = await freePort();
  promUrl = `http://127.0.0.1:${port}`;
  await writeFile(join(dir, 'rules.yaml'), dump({ groups: ruleGroups() }));
  await writeFile(join(dir, 'prometheus.yml'), dump({
    global: { scrape_interval: '1s', evaluation_interval: '1s' },
    rule_files: [join(dir, 'rules.yaml')],
    scrape_configs: [{ job_name: 'gentune', scrape_interval: '1s', scrape_timeout: '900ms', static_configs: [{ targets: [metricsAddress] }] }],
  }));
  prometheus = start(PROMETHEUS, [
    `--config.file=${join(dir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${join(dir, 'tsdb')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--log.level=warn',
  ]);
  await until('prometheus to be ready', async () => ((await fetch(`${promUrl}/-/ready`)).ok ? true : undefined));
  // A first scrape with every counter at zero, so that the traffic below is an increase.
  await until('the first scrape', valueOf('gentune_generation_generated_tokens_total and on() up{job="gentune"} == 1'));
});

after(async () => {
  client?.close();
  await stop(prometheus);
  await stop(server, 10_000);
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('Prometheus sees the generated-token rate and TTFT quantiles of a streamed generation', { skip }, async () => {
  let tokens = 0;
  for (const prompt of ['Hello', 'Once upon', 'The answer is']) tokens += await streamGeneration(client!, prompt, '', 16);
  assert.equal(tokens, 48);

  const rate = await until('a generated-token rate > 0', valueOf('rate(gentune_generation_generated_tokens_total[30s])', (v) => v > 0));
  assert.ok(rate > 0);
  for (const q of [0.5, 0.9, 0.99]) {
    const ttft = await until(`TTFT p${q * 100}`, valueOf(`histogram_quantile(${q}, sum by (le) (rate(gentune_generation_time_to_first_token_seconds_bucket[30s])))`));
    assert.ok(ttft > 0 && ttft < 60, `TTFT p${q * 100} = ${ttft} s`);
  }
  const tokensSeen = await until('48 tokens counted', valueOf('gentune_generation_generated_tokens_total', (v) => v === 48));
  assert.equal(tokensSeen, 48);
});

test('Prometheus tells the OpenAI HTTP API\'s calls (api="openai") from gRPC\'s (api="grpc")', { skip }, async () => {
  const res = await fetch(`${openaiUrl}/models`);
  assert.equal(res.status, 200);
  const openai = await until('an OpenAI call counted', valueOf('sum(gentune_rpc_requests_total{api="openai", method="models.list", code="OK"})', (v) => v >= 1));
  assert.equal(openai, 1);
  assert.ok(await until('gRPC calls counted', valueOf('sum(gentune_rpc_requests_total{api="grpc"})', (v) => v >= 1)));
});

test('Prometheus sees the fine-tune job step forward', { skip }, async () => {
  const events = await fineTune(client!, 'e2e-animals', 6);
  const jobId = events[0].jobId;
  assert.equal(events.at(-1)?.event?.$case, 'succeeded');
  const selector = `{job="gentune", job_id="${jobId}", adapter="e2e-animals"}`;
  const step = await until('the job\'s last step', valueOf(`max_over_time(gentune_finetune_step${selector}[2m])`, (v) => v === 6));
  assert.equal(step, 6);
  assert.equal(await until('total steps', valueOf(`gentune_finetune_total_steps${selector}`)), 6);
  const advanced = await until('steps counted', valueOf('increase(gentune_finetune_steps_total[2m])', (v) => v > 0));
  assert.ok(advanced > 0);
  assert.ok(await until('a loss', valueOf(`gentune_finetune_train_loss${selector}`)));
  assert.equal(await until('the succeeded job', valueOf('gentune_finetune_jobs{state="succeeded"}', (v) => v === 1)), 1);
});

test('every dashboard query runs, and every alert rule evaluates healthy, on the real Prometheus', { skip }, async () => {
  for (const { panel, expr } of dashboardExpressions()) {
    await assert.doesNotReject(query(expandGrafanaVariables(expr)), `panel "${panel}"`);
  }
  const expected = ruleGroups().flatMap((g) => g.rules.map((r) => r.alert));
  const rules = await until('every rule evaluated', async () => {
    const res = (await (await fetch(`${promUrl}/api/v1/rules`)).json()) as {
      data: { groups: { rules: { name: string; health: string; lastError?: string }[] }[] };
    };
    const all = res.data.groups.flatMap((g) => g.rules);
    return all.length === expected.length && all.every((r) => r.health !== 'unknown') ? all : undefined;
  });
  for (const r of rules) assert.equal(r.health, 'ok', `${r.name}: ${r.lastError}`);
  assert.deepEqual(rules.map((r) => r.name).sort(), expected.sort());
});

test('SIGTERM drains: the server stops with code 0 and Prometheus sees the target go down', { skip }, async () => {
  client!.close();
  client = undefined;
  server!.proc.kill('SIGTERM');
  assert.equal(await server!.exited, 0, server!.lines.slice(-5).join('\n'));
  assert.ok(server!.lines.some((l) => l.includes('"msg":"stopped"')));
  await until('up == 0', valueOf('up{job="gentune"}', (v) => v === 0));
});
