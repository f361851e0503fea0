// Hot swap (issue "Model manager and scheduler", item 4): publishing a new
// version is atomic for requests. Requests in flight finish on the version
// they started with, later ones get the new one, none fails because of a
// swap; and the delay from publish to the next request seeing it is measured.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { renameSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { AdapterRegistry } from '../../../src/engine/adapter-registry.js';
import { AdapterStore } from '../../../src/engine/adapter-store.js';
import { createEngine } from '../../../src/engine/create-engine.js';
import type { Engine } from '../../../src/engine/engine-api.js';
import { type Adapter, disposeAdapter } from '../../../src/model/adapter.js';
import { initLoraAdapter } from '../../../src/model/adapter-init.js';
import { saveAdapter } from '../../../src/model/checkpoint/peft-adapter.js';
import { testBackend, TINY } from '../../helpers/tiny-model.js';
import { collect, genParams, greedy, silentLog, summary, tempDir, testConfig, tinyModelWithTokenizer } from './engine-fixture.js';

const lora = (seed: number): Adapter =>
  initLoraAdapter(TINY, { r: 4, loraAlpha: 64, loraDropout: 0, targetModules: ['attn.c_attn', 'mlp.c_fc'], useRslora: false }, { seed, init: false, baseModel: 'tiny' });

const VERSIONS = 5;
let adapters: Adapter[];

before(async () => {
  await testBackend();
  adapters = Array.from({ length: VERSIONS }, (_, i) => lora(100 + i));
});

after(() => adapters.forEach(disposeAdapter));

/** Another replica publishing: the whole folder under a hidden name, renamed into place. Returns the time of the rename. */
async function publishAsReplica(adaptersDir: string, name: string, version: number, adapter: Adapter): Promise<number> {
  const tmp = join(adaptersDir, name, `.tmp-replica-${randomBytes(4).toString('hex')}`);
  await saveAdapter(tmp, adapter, TINY);
  await rename(tmp, join(adaptersDir, name, String(version)));
  return performance.now();
}

/**
 * Starts a greedy generation on "chat" and resolves once its first chunk is in (the engine has taken a version),
 * with a function that reads it to its end and resolves with the version its finish names: the caller calls it
 * after its publish, so the request is in flight across it.
 */
async function heldAcrossPublish(engine: Engine): Promise<() => Promise<number>> {
  const it = engine.generate(genParams('xyz', { sampling: greedy(12), adapter: { name: 'chat' } }), new AbortController().signal)[Symbol.asyncIterator]();
  let next = await it.next();
  return async () => {
    while (!next.done && next.value.finish === undefined) next = await it.next();
    assert.ok(!next.done, 'the held generation ends with a finish chunk');
    return Number(next.value.finish!.adapter.split('@')[1]);
  };
}

interface Served {
  startMs: number;
  endMs: number;
  version: number;
  ids: number[];
  reason: string;
}

test('in process: a lease keeps the version it took; publish makes the next lease take the new one at once', async () => {
  const store = await AdapterStore.open(join(await tempDir(), 'adapters'), TINY, silentLog, { watch: false });
  const registry = new AdapterRegistry(store, silentLog);
  try {
    await registry.publish('chat', lora(1));
    const old = await registry.acquire({ name: 'chat' });
    const published = registry.publish('chat', lora(2));
    const meanwhile = await registry.acquire({ name: 'chat' });
    await published;
    const next = await registry.acquire({ name: 'chat' });
    assert.deepEqual([old.label, meanwhile.label, next.label], ['chat@1', 'chat@1', 'chat@2']);
    const info = registry.info('chat');
    assert.deepEqual(info.versions.map((v) => v.residency), ['loaded', 'loaded']);
    for (const l of [old, meanwhile, next]) l.release();
  } finally {
    registry.dispose();
  }
});

test('concurrent streams while versions are published by another replica: none fails, each finishes on the version it started with, later ones see the new version', async () => {
  const modelDir = await tinyModelWithTokenizer();
  const dataDir = await tempDir();
  const adaptersDir = join(dataDir, 'adapters');
  await publishAsReplica(adaptersDir, 'chat', 1, adapters[0]);
  const engine: Engine = await createEngine(await testConfig(modelDir, dataDir, { maxBatchSize: 16 }), { log: silentLog });
  const served: Served[] = [];
  const failures: unknown[] = [];
  let publishing = true;
  const streams = 8;
  const generate = async () => {
    const startMs = performance.now();
    const chunks = await collect(engine, genParams('xyz', { sampling: greedy(12), adapter: { name: 'chat' } }));
    const { ids, last } = summary(chunks);
    served.push({ startMs, endMs: performance.now(), version: Number(last.finish!.adapter.split('@')[1]), ids, reason: last.finish!.reason });
  };
  try {
    await generate(); // loads chat@1
    const workers = Array.from({ length: streams }, async () => {
      while (publishing) await generate().catch((err: unknown) => failures.push(err));
    });
    const swaps: { version: number; publishedMs: number; visibleMs: number }[] = [];
    const held: { version: number; finish: () => Promise<number> }[] = [];
    for (let version = 2; version <= VERSIONS; version++) {
      await new Promise((r) => setTimeout(r, 150));
      // One request that certainly spans the publish: it has its first token (so it holds a version) before the
      // rename, and is read to its end only after the new version is visible. The random traffic alone
      // did not always straddle a publish on a loaded machine.
      held.push({ version, finish: await heldAcrossPublish(engine) });
      const publishedMs = await publishAsReplica(adaptersDir, 'chat', version, adapters[version - 1]);
      // Visible: the engine resolves "chat" to it (what the next Generate does first).
      for (;;) {
        const info = (await engine.listAdapters()).find((a) => a.name === 'chat');
        if (info?.latestVersion === version) break;
        if (performance.now() - publishedMs > 5000) throw new Error(`chat@${version} not visible after 5 s`);
        await new Promise((r) => setImmediate(r));
      }
      swaps.push({ version, publishedMs, visibleMs: performance.now() - publishedMs });
    }
    await new Promise((r) => setTimeout(r, 150));
    publishing = false;
    await Promise.all(workers);

    assert.deepEqual(failures, []);
    assert.ok(served.every((s) => s.reason === 'length' || s.reason === 'eos'), 'every stream finished normally');
    // Each version's greedy output, run alone afterwards: a request that ran on one version from start to end matches it.
    const reference = new Map<number, number[]>();
    for (let v = 1; v <= VERSIONS; v++) {
      reference.set(v, summary(await collect(engine, genParams('xyz', { sampling: greedy(12), adapter: { name: 'chat', version: v } }))).ids);
    }
    assert.equal(new Set([...reference.values()].map((ids) => ids.join())).size, VERSIONS, 'the versions differ');
    for (const s of served) assert.deepEqual(s.ids, reference.get(s.version), `a request on chat@${s.version}`);
    const heldOn: number[] = [];
    for (const h of held) {
      // In flight across the publish: finished on the version it started with, older than the one published.
      heldOn.push(await h.finish());
      assert.ok(heldOn.at(-1)! < h.version, `the request held across chat@${h.version}'s publish stayed on an older version`);
    }
    for (const { version, publishedMs, visibleMs } of swaps) {
      // Started once it was visible: never an older version.
      const later = served.filter((s) => s.startMs > publishedMs + visibleMs);
      assert.ok(later.every((s) => s.version >= version), `requests after chat@${version} became visible`);
    }
    const delays = swaps.map((s) => s.visibleMs);
    console.log(`# ${served.length} requests over ${streams} streams, ${swaps.length} swaps; publish -> visible: ${delays.map((d) => d.toFixed(1)).join(', ')} ms`);
    // The target is < 50 ms; the bound is looser because the test machine is shared.
    assert.ok(Math.max(...delays) < 500, `publish -> visible ${delays.join(', ')} ms`);
    const info = (await engine.listAdapters()).find((a) => a.name === 'chat')!;
    const counted = info.versions.map((v) => (v as { requestsServed?: number }).requestsServed ?? 0);
    const expected = Array.from({ length: VERSIONS }, (_, i) => served.filter((s) => s.version === i + 1).length + heldOn.filter((v) => v === i + 1).length + 1);
    assert.deepEqual(counted, expected, 'requests served per version (the held ones too; each also ran once for the reference)');
  } finally {
    publishing = false;
    await engine.drain(0);
  }
});

test('a version renamed into the store serves the very next request, before its watch event is handled', async () => {
  const modelDir = await tinyModelWithTokenizer();
  const dataDir = await tempDir();
  const adaptersDir = join(dataDir, 'adapters');
  await publishAsReplica(adaptersDir, 'chat', 1, adapters[0]);
  // In process, so that nothing between the rename and the request gives the event loop a turn.
  const engine: Engine = await createEngine(await testConfig(modelDir, dataDir), { log: silentLog, threads: false });
  try {
    assert.equal(summary(await collect(engine, genParams('xyz', { sampling: greedy(2), adapter: { name: 'chat' } }))).last.finish!.adapter, 'chat@1');
    for (const version of [2, 3]) {
      const tmp = join(adaptersDir, 'chat', `.tmp-replica-${version}`);
      await saveAdapter(tmp, adapters[version - 1], TINY);
      // Synchronous rename, then the requests at once: the store's fs.watch event is still queued.
      renameSync(tmp, join(adaptersDir, 'chat', String(version)));
      const next = collect(engine, genParams('xyz', { sampling: greedy(2), adapter: { name: 'chat' } }));
      const listed = engine.listAdapters();
      assert.equal(summary(await next).last.finish!.adapter, `chat@${version}`, 'the next Generate runs on the new version');
      assert.equal((await listed).find((a) => a.name === 'chat')!.latestVersion, version);
    }
    // LoadAdapter of a version renamed in a moment ago finds it too.
    const tmp = join(adaptersDir, 'chat', '.tmp-replica-4');
    await saveAdapter(tmp, adapters[3], TINY);
    renameSync(tmp, join(adaptersDir, 'chat', '4'));
    const loaded = await engine.loadAdapter({ name: 'chat', version: 4 }, false);
    assert.equal(loaded.latestVersion, 4);
  } finally {
    await engine.drain(0);
  }
});
