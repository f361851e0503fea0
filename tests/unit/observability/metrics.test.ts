/**
 * GentuneMetrics without a server: the registry is the service's own, every
 * family is prefixed, and each engine / RPC event lands in the right series.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { register as globalRegistry } from 'prom-client';
import type { EngineSnapshot } from '../../../src/engine/engine-metrics.js';
import { AdapterLabels, BASE_MODEL_LABEL, OTHER_ADAPTER } from '../../../src/observability/adapter-labels.js';
import { GentuneMetrics, METRIC_PREFIX } from '../../../src/observability/metrics.js';

type Value = { labels: Record<string, string | number>; value: number; metricName?: string };

/** The values of one family, as prom-client reports them. */
async function values(m: GentuneMetrics, name: string): Promise<Value[]> {
  const metric = m.registry.getSingleMetric(name);
  assert.ok(metric, `${name} is registered`);
  return (await metric.get()).values as Value[];
}

async function value(m: GentuneMetrics, name: string, labels: Record<string, string> = {}, sample = name): Promise<number | undefined> {
  const family = name.replace(/_(bucket|sum|count)$/, '');
  return (await values(m, family)).find(
    (v) => (v.metricName ?? family) === sample && Object.entries(labels).every(([k, l]) => String(v.labels[k]) === l),
  )?.value;
}

function snapshot(over: Partial<EngineSnapshot> = {}): EngineSnapshot {
  return {
    backend: { name: 'wasm', device: 'wasm simd, 1 thread(s)' },
    model: 'tiny',
    version: '1.2.3',
    sequences: () => ({ running: 3, waiting: 2 }),
    adapters: () => ({ resident: 4, bytes: 4096 }),
    jobs: () => ({ running: 1, succeeded: 5 }),
    memory: () => ({ numTensors: 42, numDataBuffers: 40, numBytes: 1234 }),
    ...over,
  };
}

test('metrics live in the service registry, not the global one, all prefixed gentune_', async () => {
  const m = new GentuneMetrics();
  const names = m.registry.getMetricsAsArray().map((x) => x.name);
  assert.ok(names.length > 40);
  for (const name of names) assert.ok(name.startsWith(METRIC_PREFIX), name);
  assert.equal(globalRegistry.getMetricsAsArray().filter((x) => x.name.startsWith(METRIC_PREFIX)).length, 0);
  // Two services in one process do not collide.
  const other = new GentuneMetrics();
  other.engine.onQueued('');
  assert.equal(await value(m, 'gentune_generation_requests_total'), 0);
  assert.equal(await value(other, 'gentune_generation_requests_total'), 1);
});

test('process metrics: prefixed defaults, minus the _total gauges promtool rejects', async () => {
  const names = new Set(new GentuneMetrics().registry.getMetricsAsArray().map((x) => x.name));
  for (const n of ['gentune_process_cpu_seconds_total', 'gentune_process_resident_memory_bytes', 'gentune_nodejs_eventloop_lag_p99_seconds', 'gentune_nodejs_active_handles']) {
    assert.ok(names.has(n), n);
  }
  assert.ok(!names.has('gentune_nodejs_active_handles_total'));
  const bare = new Set(new GentuneMetrics({ processMetrics: false }).registry.getMetricsAsArray().map((x) => x.name));
  assert.ok(!bare.has('gentune_process_cpu_seconds_total'));
});

test('RPC calls are counted by api, method and code, and timed by api and method', async () => {
  const m = new GentuneMetrics({ processMetrics: false });
  m.rpc.onCall('Generate', 'OK', 0.2);
  m.rpc.onCall('Generate', 'OK', 0.4);
  m.rpc.onCall('Generate', 'UNAVAILABLE', 0);
  m.rpc.onCall('chat.completions', 'OK', 0.1, 'openai');
  const grpc = { api: 'grpc', method: 'Generate' };
  assert.equal(await value(m, 'gentune_rpc_requests_total', { ...grpc, code: 'OK' }), 2);
  assert.equal(await value(m, 'gentune_rpc_requests_total', { ...grpc, code: 'UNAVAILABLE' }), 1);
  assert.equal(await value(m, 'gentune_rpc_requests_total', { api: 'openai', method: 'chat.completions', code: 'OK' }), 1);
  assert.equal(await value(m, 'gentune_rpc_duration_seconds_count', grpc), 3);
  assert.ok(Math.abs((await value(m, 'gentune_rpc_duration_seconds_sum', grpc))! - 0.6) < 1e-9);
  assert.equal(await value(m, 'gentune_rpc_duration_seconds_bucket', { ...grpc, le: '0.25' }), 2);
});

test('generation events: tokens, latencies in seconds, batch sizes, finish reasons', async () => {
  const m = new GentuneMetrics({ processMetrics: false });
  const e = m.engine;
  e.onQueued('');
  e.onPrefill('', 7, 30);
  e.onFirstToken('', 120);
  e.onNextToken('', 20);
  e.onNextToken('', 40);
  e.onDecodeStep(3);
  e.onFinish('length', 200);
  e.onFinish('error', 10);
  assert.equal(await value(m, 'gentune_generation_requests_total'), 1);
  assert.equal(await value(m, 'gentune_generation_prompt_tokens_total'), 7);
  assert.equal(await value(m, 'gentune_generation_generated_tokens_total'), 3);
  assert.equal(await value(m, 'gentune_generation_queue_time_seconds_sum'), 0.03);
  assert.equal(await value(m, 'gentune_generation_time_to_first_token_seconds_sum'), 0.12);
  assert.equal(await value(m, 'gentune_generation_time_to_first_token_seconds_bucket', { le: '0.1' }), 0);
  assert.equal(await value(m, 'gentune_generation_time_to_first_token_seconds_bucket', { le: '0.25' }), 1);
  assert.equal(await value(m, 'gentune_generation_inter_token_latency_seconds_count'), 2);
  assert.ok(Math.abs((await value(m, 'gentune_generation_inter_token_latency_seconds_sum'))! - 0.06) < 1e-9);
  assert.equal(await value(m, 'gentune_generation_batch_size_bucket', { le: '4' }), 1);
  assert.equal(await value(m, 'gentune_generation_e2e_latency_seconds_count'), 2);
  assert.equal(await value(m, 'gentune_generation_finished_total', { reason: 'length' }), 1);
  assert.equal(await value(m, 'gentune_generation_finished_total', { reason: 'error' }), 1);
  assert.equal(await value(m, 'gentune_generation_finished_total', { reason: 'eos' }), 0, 'every reason is exported from the start');
});

test('gauges read the engine at scrape time: sequences, adapters, jobs by state, tfjs memory, info', async () => {
  const m = new GentuneMetrics({ processMetrics: false });
  assert.equal(await value(m, 'gentune_tfjs_tensors'), 0, 'before the engine is up');
  let tensors = 42;
  m.engine.bindEngine(snapshot({ memory: () => ({ numTensors: tensors, numDataBuffers: 40, numBytes: 1234 }) }));
  assert.equal(await value(m, 'gentune_generation_sequences_running'), 3);
  assert.equal(await value(m, 'gentune_generation_sequences_waiting'), 2);
  assert.equal(await value(m, 'gentune_adapters_resident'), 4);
  assert.equal(await value(m, 'gentune_adapters_resident_bytes'), 4096);
  assert.equal(await value(m, 'gentune_finetune_jobs', { state: 'running' }), 1);
  assert.equal(await value(m, 'gentune_finetune_jobs', { state: 'succeeded' }), 5);
  assert.equal(await value(m, 'gentune_finetune_jobs', { state: 'queued' }), 0);
  assert.equal(await value(m, 'gentune_tfjs_tensors'), 42);
  tensors = 43;
  assert.equal(await value(m, 'gentune_tfjs_tensors'), 43, 'read again at every scrape');
  assert.equal(await value(m, 'gentune_tfjs_memory_bytes'), 1234);
  assert.equal(await value(m, 'gentune_backend_info', { backend: 'wasm', device: 'wasm simd, 1 thread(s)' }), 1);
  assert.equal(await value(m, 'gentune_build_info', { version: '1.2.3' }), 1);
  assert.equal(await value(m, 'gentune_model_info', { model: 'tiny' }), 1);
});

test('device memory: in use (GPU bytes on webgpu, else tfjs bytes) and, on webgpu only, allocated', async () => {
  const m = new GentuneMetrics({ processMetrics: false });
  let memory: ReturnType<EngineSnapshot['memory']> = { numTensors: 5, numDataBuffers: 5, numBytes: 4000 };
  m.engine.bindEngine(snapshot({ memory: () => memory }));
  assert.equal(await value(m, 'gentune_device_memory_bytes', { kind: 'in_use' }), 4000);
  assert.equal(await value(m, 'gentune_device_memory_bytes', { kind: 'allocated' }), undefined, 'wasm reports no pool');
  memory = { numTensors: 5, numDataBuffers: 5, numBytes: 4000, numBytesInGPU: 3000, numBytesAllocatedInGPU: 8192 };
  assert.equal(await value(m, 'gentune_device_memory_bytes', { kind: 'in_use' }), 3000);
  assert.equal(await value(m, 'gentune_device_memory_bytes', { kind: 'allocated' }), 8192);
  assert.equal(await value(m, 'gentune_kv_cache_bytes', { kind: 'in_use' }), 0, 'no paged KV cache reported: 0');
  memory = { ...memory, kvCacheBytes: 1 << 20, kvCacheBytesInUse: 49152 };
  assert.equal(await value(m, 'gentune_kv_cache_bytes', { kind: 'allocated' }), 1 << 20);
  assert.equal(await value(m, 'gentune_kv_cache_bytes', { kind: 'in_use' }), 49152);
});

test('adapter events: per-adapter traffic without versions, loads, evictions', async () => {
  const m = new GentuneMetrics({ processMetrics: false });
  const e = m.engine;
  e.onQueued('support@1');
  e.onQueued('support@2');
  e.onPrefill('support@2', 5, 0);
  e.onFirstToken('support@2', 1);
  e.onQueued('');
  e.onAdapterLoad(250, true);
  e.onAdapterLoad(5, false);
  e.onAdapterEvicted();
  assert.equal(await value(m, 'gentune_adapter_requests_total', { adapter: 'support' }), 2);
  assert.equal(await value(m, 'gentune_adapter_requests_total', { adapter: BASE_MODEL_LABEL }), 1);
  assert.equal(await value(m, 'gentune_adapter_prompt_tokens_total', { adapter: 'support' }), 5);
  assert.equal(await value(m, 'gentune_adapter_generated_tokens_total', { adapter: 'support' }), 1);
  assert.equal(await value(m, 'gentune_adapter_loads_total', { result: 'success' }), 1);
  assert.equal(await value(m, 'gentune_adapter_loads_total', { result: 'error' }), 1);
  assert.equal(await value(m, 'gentune_adapter_load_duration_seconds_sum'), 0.255);
  assert.equal(await value(m, 'gentune_adapter_evictions_total'), 1);
});

test('the adapter label is capped: names beyond the limit share "(other)"', async () => {
  const labels = new AdapterLabels(2);
  assert.equal(labels.of(''), BASE_MODEL_LABEL);
  assert.equal(labels.of('a@1'), 'a');
  assert.equal(labels.of('b@3'), 'b');
  assert.equal(labels.of('c@1'), OTHER_ADAPTER);
  assert.equal(labels.of('a@2'), 'a', 'a known name keeps its series');
  assert.equal(labels.of(''), BASE_MODEL_LABEL, 'the base model does not count against the cap');

  const m = new GentuneMetrics({ processMetrics: false, adapterLabelLimit: 3 });
  for (let i = 0; i < 10; i++) m.engine.onQueued(`adapter-${i}@1`);
  const series = (await values(m, 'gentune_adapter_requests_total')).map((v) => [v.labels.adapter, v.value]);
  assert.deepEqual(series, [['adapter-0', 1], ['adapter-1', 1], ['adapter-2', 1], [OTHER_ADAPTER, 7]]);
});

test('fine-tune progress: gauges of the running job, cleared when the next one starts', async () => {
  const m = new GentuneMetrics({ processMetrics: false });
  const e = m.engine;
  const before = Date.now() / 1000;
  e.onJobStarted('job-1', 'animals', 10);
  assert.equal(await value(m, 'gentune_finetune_step', { job_id: 'job-1', adapter: 'animals' }), 0);
  assert.ok((await value(m, 'gentune_finetune_last_step_timestamp_seconds', { job_id: 'job-1' }))! >= before, 'a start counts as a step for the stuck-trainer alert');
  e.onJobProgress('job-1', { step: 3, totalSteps: 10, loss: 2.5, learningRate: 1e-3, gradNorm: 0.7, tokensPerSecond: 900 });
  e.onJobEvaluation('job-1', 2.25);
  const labels = { job_id: 'job-1', adapter: 'animals' };
  assert.equal(await value(m, 'gentune_finetune_step', labels), 3);
  assert.equal(await value(m, 'gentune_finetune_total_steps', labels), 10);
  assert.equal(await value(m, 'gentune_finetune_train_loss', labels), 2.5);
  assert.equal(await value(m, 'gentune_finetune_eval_loss', labels), 2.25);
  assert.equal(await value(m, 'gentune_finetune_learning_rate', labels), 1e-3);
  assert.equal(await value(m, 'gentune_finetune_grad_norm', labels), 0.7);
  assert.equal(await value(m, 'gentune_finetune_throughput_tokens_per_second', labels), 900);
  assert.equal(await value(m, 'gentune_finetune_steps_total'), 1);

  e.onJobStarted('job-2', 'support', 4);
  assert.deepEqual((await values(m, 'gentune_finetune_step')).map((v) => v.labels.job_id), ['job-2']);
  assert.deepEqual((await values(m, 'gentune_finetune_train_loss')).length, 0);
  assert.equal(await value(m, 'gentune_finetune_steps_total'), 1, 'the counter survives');
});
