/**
 * A live /metrics from the real server after real traffic (a streamed
 * generation, a fine-tune, a generation through its adapter, a failed call):
 * promtool accepts it, it has the series the traffic must produce, and every
 * metric the Grafana dashboard and the alert rules query exists in it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { dashboardExpressions, exposedNames, noPromtool, metricNames, promtool, ruleGroups } from './promql.js';
import { driveTraffic, get, type LiveServer, startLiveServer, streamGeneration } from './live-server.js';
import { requirePeer, skipWithoutPeer } from '../../helpers/test-peer.js';

let live: LiveServer;
let exposition: string;

before(async () => {
  live = await startLiveServer();
  await driveTraffic(live);
  const res = await get(`${live.metricsUrl}/metrics`);
  assert.equal(res.status, 200);
  exposition = res.body;
});

after(() => live?.close());

/** The value of one sample line, e.g. `gentune_generation_generated_tokens_total`. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test('promtool check metrics passes on the live exposition', { skip: skipWithoutPeer(noPromtool) }, () => {
  requirePeer(noPromtool);
  assert.ok(exposition.includes('gentune_generation_time_to_first_token_seconds_bucket'));
  const r = promtool(['check', 'metrics'], exposition);
  assert.equal(r.status, 0, r.output);
  assert.equal(r.output.trim(), '', 'no lint findings either');
});

test('the traffic shows: RPCs by code, tokens, TTFT, per-adapter series, the job, tfjs and backend', () => {
  const has = (pattern: RegExp) => assert.match(exposition, pattern);
  has(/^gentune_rpc_requests_total\{api="grpc",method="Generate",code="OK"\} 2$/m);
  has(/^gentune_rpc_requests_total\{api="grpc",method="Generate",code="NOT_FOUND"\} 1$/m);
  has(/^gentune_rpc_requests_total\{api="grpc",method="FineTune",code="OK"\} 1$/m);
  assert.equal(sample(exposition, 'gentune_generation_generated_tokens_total'), 16, '2 generations of 8 tokens');
  assert.equal(sample(exposition, 'gentune_generation_time_to_first_token_seconds_count'), 2);
  assert.equal(sample(exposition, 'gentune_generation_inter_token_latency_seconds_count'), 14);
  has(/^gentune_generation_finished_total\{reason="length"\} 2$/m);
  has(/^gentune_adapter_requests_total\{adapter="\(base\)"\} 1$/m);
  has(/^gentune_adapter_generated_tokens_total\{adapter="animals"\} 8$/m);
  assert.equal(sample(exposition, 'gentune_adapters_resident'), 1, 'the published adapter stays resident');
  has(/^gentune_finetune_jobs\{state="succeeded"\} 1$/m);
  has(/^gentune_finetune_step\{job_id="[^"]+",adapter="animals"\} 3$/m);
  has(/^gentune_finetune_eval_loss\{job_id="[^"]+",adapter="animals"\} \d/m);
  assert.equal(sample(exposition, 'gentune_finetune_steps_total'), 3);
  assert.ok(sample(exposition, 'gentune_tfjs_tensors')! > 0);
  has(/^gentune_backend_info\{backend="(wasm|cpu|webgpu|tensorflow)",device="[^"]+"\} 1$/m);
  // Device memory, read in the serving thread (the main thread has no model): tfjs's bytes, GPU buffers on webgpu.
  const inUse = sample(exposition, 'gentune_device_memory_bytes{kind="in_use"}');
  assert.ok(inUse! > 0, `in use ${inUse}`);
  if (!exposition.includes('backend="webgpu"')) assert.equal(inUse, sample(exposition, 'gentune_tfjs_memory_bytes'));
  has(/^gentune_process_resident_memory_bytes \d+/m);
  // Paged KV cache (host backends): memory was reserved by the generations and every page came back when they ended.
  if (/backend="(wasm|cpu)"/.test(exposition)) {
    assert.ok(sample(exposition, 'gentune_kv_cache_bytes{kind="allocated"}')! > 0, 'KV cache memory reserved');
    assert.equal(sample(exposition, 'gentune_kv_cache_bytes{kind="in_use"}'), 0, 'no page held after the generations ended');
  }
});

test('every metric of the Grafana dashboard exists in the live exposition', () => {
  const names = exposedNames(exposition);
  const exprs = dashboardExpressions();
  assert.ok(exprs.length >= 20);
  for (const { panel, expr } of exprs) {
    const used = metricNames(expr);
    assert.ok(used.length > 0, `panel "${panel}" queries no gentune metric: ${expr}`);
    for (const name of used) assert.ok(names.has(name), `panel "${panel}": ${name} is not exported`);
  }
});

test('every metric of the alert rules exists in the live exposition', () => {
  const names = exposedNames(exposition);
  for (const rule of ruleGroups().flatMap((g) => g.rules)) {
    const used = metricNames(rule.expr);
    assert.ok(used.length > 0, rule.alert);
    for (const name of used) assert.ok(names.has(name), `alert ${rule.alert}: ${name} is not exported`);
  }
});

test('/readyz is 200 while serving, and the tfjs tensor gauge does not grow across requests', async () => {
  assert.equal((await get(`${live.metricsUrl}/readyz`)).status, 200);
  const tensors = async () => sample((await get(`${live.metricsUrl}/metrics`)).body, 'gentune_tfjs_tensors');
  await streamGeneration(live.client, 'warm');
  const first = await tensors();
  await streamGeneration(live.client, 'again');
  await streamGeneration(live.client, 'and again', 'animals');
  assert.equal(await tensors(), first);
});
