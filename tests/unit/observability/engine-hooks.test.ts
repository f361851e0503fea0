/**
 * The engine's EngineMetrics calls, seen by a recorder: the decode loop
 * (queue, prefill, tokens, batch sizes, finish reasons, the snapshot of
 * running / waiting sequences) and the adapter registry (loads, failed loads,
 * evictions).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { AdapterRegistry } from '../../../src/engine/adapter-registry.js';
import { AdapterStore } from '../../../src/engine/adapter-store.js';
import { createEngine } from '../../../src/engine/create-engine.js';
import type { Engine } from '../../../src/engine/engine-api.js';
import type { EngineMetrics, EngineSnapshot } from '../../../src/engine/engine-metrics.js';
import { initLoraAdapter } from '../../../src/model/adapter-init.js';
import { TINY } from '../../helpers/tiny-model.js';
import { collect, genParams, greedy, silentLog, summary, tempDir, testConfig, tinyModelWithTokenizer } from '../engine/engine-fixture.js';

type Event = [string, ...unknown[]];

/** Records every call. */
class Recorder implements EngineMetrics {
  readonly events: Event[] = [];
  snapshot?: EngineSnapshot;
  /** Called in each decode step's hook, after it is recorded (in-process: synchronously, inside the loop). */
  atStep: () => void = () => {};
  bindEngine(s: EngineSnapshot) { this.snapshot = s; }
  onQueued(...a: unknown[]) { this.events.push(['queued', ...a]); }
  onPrefill(...a: unknown[]) { this.events.push(['prefill', ...a]); }
  onFirstToken(...a: unknown[]) { this.events.push(['first', ...a]); }
  onNextToken(...a: unknown[]) { this.events.push(['next', ...a]); }
  onFinish(...a: unknown[]) { this.events.push(['finish', ...a]); }
  onDecodeStep(...a: unknown[]) {
    this.events.push(['step', ...a]);
    this.atStep();
  }
  onAdapterLoad(...a: unknown[]) { this.events.push(['load', ...a]); }
  onAdapterEvicted() { this.events.push(['evicted']); }
  onJobStarted(...a: unknown[]) { this.events.push(['jobStarted', ...a]); }
  onJobProgress(...a: unknown[]) { this.events.push(['jobProgress', ...a]); }
  onJobEvaluation(...a: unknown[]) { this.events.push(['jobEvaluation', ...a]); }
  named(name: string): Event[] { return this.events.filter((e) => e[0] === name); }
}

// In-process, so the hooks are called by the decode loop itself, as it works,
// and the snapshot read in one is the loop's state at that step. (Across the
// thread boundary they arrive in batches, later: threads.test.ts covers that.)
let engine: Engine;
const recorder = new Recorder();

before(async () => {
  const config = await testConfig(await tinyModelWithTokenizer(), await tempDir(), { maxBatchSize: 1 });
  engine = await createEngine(config, { log: silentLog, metrics: recorder, threads: false });
});

after(() => engine.drain(0));

test('createEngine binds a snapshot of the engine: backend, model, jobs, adapters, tfjs memory', () => {
  const s = recorder.snapshot!;
  assert.ok(s.backend.name && s.backend.device && s.model && s.version);
  assert.deepEqual(s.sequences(), { running: 0, waiting: 0 });
  assert.deepEqual(s.adapters(), { resident: 0, bytes: 0 });
  assert.deepEqual(s.jobs(), {});
  assert.ok(s.memory().numTensors > 0, 'the base model weights');
});

test('the decode loop reports queueing, prefill, every token, batch sizes and finish reasons', async () => {
  recorder.events.length = 0;
  const cancelFirst = new AbortController();
  // One batch slot: the second and third requests wait while the first runs.
  // The first would run to the context's end; it is cancelled at the first
  // decode step after all three are queued, once the snapshot is read there.
  let seen: { running: number; waiting: number } | undefined;
  recorder.atStep = () => {
    if (seen || recorder.named('queued').length < 3) return;
    seen = recorder.snapshot!.sequences();
    cancelFirst.abort();
  };
  const first = collect(engine, genParams('first', { sampling: greedy(TINY.nPositions - 5) }), cancelFirst.signal);
  const second = collect(engine, genParams('second', { sampling: greedy(4) }));
  const third = collect(engine, genParams('third', { sampling: greedy(6) }));
  const [cut] = await Promise.all([first, second, third]);
  recorder.atStep = () => {};

  assert.deepEqual(seen, { running: 1, waiting: 2 });
  assert.deepEqual(recorder.named('queued'), [['queued', ''], ['queued', ''], ['queued', '']]);
  const prefills = recorder.named('prefill');
  assert.deepEqual(prefills.map((e) => e[2]), [5, 6, 5], 'prompt tokens');
  // The later requests waited in the queue: their prefills come after the first's first token.
  const at = (e: Event) => recorder.events.indexOf(e);
  assert.ok(at(prefills[1]) > at(recorder.named('first')[0]) && at(prefills[2]) > at(prefills[1]));
  for (const e of prefills) assert.ok(typeof e[3] === 'number' && e[3] >= 0, 'queue time in ms');
  assert.equal(recorder.named('first').length, 3);
  const nexts = recorder.named('next');
  assert.equal(nexts.length, summary(cut).ids.length - 1 + 3 + 5, 'every token after the first');
  for (const e of [...recorder.named('first'), ...nexts]) assert.ok(typeof e[2] === 'number' && e[2] >= 0);
  assert.ok(recorder.named('step').every((e) => e[1] === 1), 'batch size 1');
  assert.deepEqual(recorder.named('finish').map((e) => e[1]), ['cancelled', 'length', 'length']);
  assert.deepEqual(recorder.snapshot!.sequences(), { running: 0, waiting: 0 });
});

test('the adapter registry reports loads (and failed ones) and evictions', async () => {
  const events = new Recorder();
  const dir = join(await tempDir(), 'adapters');
  const store = await AdapterStore.open(dir, TINY, silentLog);
  const lora = (seed: number) =>
    initLoraAdapter(TINY, { r: 2, loraAlpha: 4, loraDropout: 0, targetModules: ['attn.c_attn'], useRslora: false }, { seed, init: false, baseModel: 'tiny' });
  // A budget of one adapter: publishing the second evicts the idle first.
  const registry = new AdapterRegistry(store, silentLog, 1, events);
  await registry.publish('a', lora(1));
  await registry.publish('b', lora(2));
  assert.ok(events.named('evicted').length >= 1);
  const lease = await registry.acquire({ name: 'a' });
  lease.release();
  const loads = events.named('load');
  assert.equal(loads.length, 1);
  assert.equal(loads[0][2], true);
  assert.ok((loads[0][1] as number) >= 0);
  await rm(join(dir, 'b', '1', 'adapter_model.safetensors'));
  registry.unload({ name: 'b' });
  await assert.rejects(registry.acquire({ name: 'b' }));
  assert.deepEqual(events.named('load').map((e) => e[2]), [true, false]);
  registry.dispose();
});
