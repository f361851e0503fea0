// Store watching (issue "Model manager and scheduler", item 3): a version
// folder another replica renames into <dataDir>/adapters/<name>/ becomes
// available without a restart, a deleted one disappears, and half-written
// folders are listed as broken until complete (issue 18), never served.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GentuneError } from '../../../src/common/errors.js';
import { AdapterRegistry } from '../../../src/engine/adapter-registry.js';
import { AdapterStore, type AdapterStoreChange } from '../../../src/engine/adapter-store.js';
import { createEngine } from '../../../src/engine/create-engine.js';
import { type Adapter, disposeAdapter } from '../../../src/model/adapter.js';
import { initLoraAdapter } from '../../../src/model/adapter-init.js';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, saveAdapter } from '../../../src/model/checkpoint/peft-adapter.js';
import { testBackend, TINY } from '../../helpers/tiny-model.js';
import { collect, genParams, greedy, silentLog, summary, tempDir, testConfig, tinyModelWithTokenizer } from './engine-fixture.js';

let adapter: Adapter;

before(async () => {
  await testBackend();
  adapter = initLoraAdapter(TINY, { r: 4, loraAlpha: 64, loraDropout: 0, targetModules: ['attn.c_attn', 'mlp.c_fc'], useRslora: false }, { seed: 3, init: false, baseModel: 'tiny' });
});

after(() => disposeAdapter(adapter));

/** What another replica does: writes the whole folder under a hidden name, then renames it into place. Returns when the rename is done. */
async function publishAsReplica(adaptersDir: string, name: string, version: number): Promise<number> {
  const tmp = join(adaptersDir, name, `.tmp-replica-${randomBytes(4).toString('hex')}`);
  await saveAdapter(tmp, adapter, TINY);
  await rename(tmp, join(adaptersDir, name, String(version)));
  return performance.now();
}

/** Resolves with the milliseconds it took for `predicate` to hold, polling every millisecond. */
async function within(ms: number, predicate: () => boolean | Promise<boolean>, what: string, since = performance.now()): Promise<number> {
  while (!(await predicate())) {
    if (performance.now() - since > ms) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
  return performance.now() - since;
}

const versionsOf = (store: AdapterStore, name: string) => store.versions(name).map((v) => v.version);

test('fs.watch: versions renamed in by another writer appear within milliseconds, new names included', async () => {
  const dir = join(await tempDir(), 'adapters');
  // No periodic rescan: only the watch can find them.
  const store = await AdapterStore.open(dir, TINY, silentLog, { rescanMs: 0 });
  const changes: AdapterStoreChange[] = [];
  store.onChange((c) => changes.push(c));
  try {
    const t1 = await publishAsReplica(dir, 'fresh', 1);
    const newName = await within(2000, () => versionsOf(store, 'fresh').includes(1), 'fresh@1 listed', t1);
    const t2 = await publishAsReplica(dir, 'fresh', 2);
    const newVersion = await within(2000, () => versionsOf(store, 'fresh').includes(2), 'fresh@2 listed', t2);
    console.log(`# rename -> listed: new name ${newName.toFixed(1)} ms, new version ${newVersion.toFixed(1)} ms`);
    assert.deepEqual(changes.flatMap((c) => c.added.map((v) => `${v.name}@${v.version}`)), ['fresh@1', 'fresh@2']);
    assert.equal(store.get('fresh', 2)?.method, 'lora');
    // Removed by another writer: gone, and listeners hear of it.
    await rm(join(dir, 'fresh', '1'), { recursive: true });
    await within(2000, () => !versionsOf(store, 'fresh').includes(1), 'fresh@1 gone');
    assert.deepEqual(changes.flatMap((c) => c.removed.map((v) => `${v.name}@${v.version}`)), ['fresh@1']);
    await rm(join(dir, 'fresh'), { recursive: true });
    await within(2000, () => store.list().size === 0, 'fresh gone');
  } finally {
    store.close();
  }
});

test('half-written folders are ignored: hidden temp folders, and a version folder whose weights are still being copied', async () => {
  const dir = join(await tempDir(), 'adapters');
  const store = await AdapterStore.open(dir, TINY, silentLog, { rescanMs: 0 });
  try {
    const tmp = join(dir, 'chat', '.tmp-writer-1');
    await saveAdapter(tmp, adapter, TINY);
    // A writer that does not rename: the folder has its final name, the weights are half there.
    const whole = await readFile(join(tmp, ADAPTER_WEIGHTS_FILE));
    const slow = join(dir, 'chat', '1');
    await mkdir(slow, { recursive: true });
    await writeFile(join(slow, ADAPTER_CONFIG_FILE), await readFile(join(tmp, ADAPTER_CONFIG_FILE)));
    await writeFile(join(slow, ADAPTER_WEIGHTS_FILE), whole.subarray(0, whole.length >> 1));
    await store.rescan();
    // Listed as broken, with the reason and no server path (issue 18); never served while so.
    assert.deepEqual(versionsOf(store, 'chat'), [1]);
    assert.match(store.get('chat', 1)?.broken ?? '', /^adapter_model\.safetensors: .*truncated/);
    assert.ok(!store.get('chat', 1)!.broken!.includes(dir), store.get('chat', 1)!.broken);
    await writeFile(join(slow, ADAPTER_WEIGHTS_FILE), whole);
    await within(2000, () => store.get('chat', 1)?.broken === undefined, 'chat@1 complete');
    assert.deepEqual(versionsOf(store, 'chat'), [1]);
    // The temp folder never became a version, and a store that opens now leaves a young one alone (another writer's).
    const again = await AdapterStore.open(dir, TINY, silentLog, { watch: false });
    assert.deepEqual(versionsOf(again, 'chat'), [1]);
    assert.ok((await readFile(join(tmp, ADAPTER_CONFIG_FILE))).length > 0);
  } finally {
    store.close();
  }
});

test('without fs events the periodic rescan finds new versions and drops deleted ones', async () => {
  const dir = join(await tempDir(), 'adapters');
  const store = await AdapterStore.open(dir, TINY, silentLog, { fsEvents: false, rescanMs: 50 });
  try {
    const t = await publishAsReplica(dir, 'polled', 1);
    const ms = await within(2000, () => versionsOf(store, 'polled').includes(1), 'polled@1 listed', t);
    assert.ok(ms >= 0);
    await rm(join(dir, 'polled'), { recursive: true });
    await within(2000, () => store.list().size === 0, 'polled gone');
  } finally {
    store.close();
  }
});

test('a version deleted by another writer retires: leases in flight keep their tensors, new requests fall back to what is left', async () => {
  const dir = join(await tempDir(), 'adapters');
  const store = await AdapterStore.open(dir, TINY, silentLog, { rescanMs: 0 });
  const registry = new AdapterRegistry(store, silentLog);
  try {
    await publishAsReplica(dir, 'chat', 1);
    await publishAsReplica(dir, 'chat', 2);
    await within(2000, () => versionsOf(store, 'chat').length === 2, 'chat@1,2');
    const lease = await registry.acquire({ name: 'chat' });
    assert.equal(lease.label, 'chat@2');
    await rm(join(dir, 'chat', '2'), { recursive: true });
    await within(2000, () => registry.resolve({ name: 'chat' }).version === 1, 'latest back to 1');
    // The retired version's tensors are still usable by its lease.
    assert.ok(lease.adapter.kind === 'lora' && !lease.adapter.lora.modules.get('0.attn.c_attn')!.a.isDisposed);
    assert.equal(registry.info('chat').versions.length, 1);
    lease.release();
    assert.ok(lease.adapter.kind === 'lora' && lease.adapter.lora.modules.get('0.attn.c_attn')!.a.isDisposed);
    await assert.rejects(registry.acquire({ name: 'chat', version: 2 }), /no such adapter version \(latest is 1\)/);
  } finally {
    registry.dispose();
  }
});

test('engine: an adapter written into the data dir after start serves Generate within a bounded time, no restart; deleted, it is NotFound', async () => {
  const modelDir = await tinyModelWithTokenizer();
  const dataDir = await tempDir();
  const engine = await createEngine(await testConfig(modelDir, dataDir), { log: silentLog });
  const adapters = join(dataDir, 'adapters');
  try {
    const base = summary(await collect(engine, genParams('xyz', { sampling: greedy(6) }))).ids;
    const published = await publishAsReplica(adapters, 'replica', 1);
    let chunks: Awaited<ReturnType<typeof collect>> = [];
    const ms = await within(2000, async () => {
      try {
        chunks = await collect(engine, genParams('xyz', { sampling: greedy(6), adapter: { name: 'replica' } }));
        return true;
      } catch (err) {
        if (err instanceof GentuneError && err.code === 'NOT_FOUND') return false;
        throw err;
      }
    }, 'Generate with replica', published);
    console.log(`# rename -> first Generate on the new adapter done: ${ms.toFixed(1)} ms`);
    assert.equal(summary(chunks).last.finish?.adapter, 'replica@1');
    assert.notDeepEqual(summary(chunks).ids, base);
    const listed = (await engine.listAdapters()).find((a) => a.name === 'replica');
    assert.equal(listed?.versions[0].residency, 'loaded');

    await rm(join(adapters, 'replica'), { recursive: true });
    await within(2000, async () => !(await engine.listAdapters()).some((a) => a.name === 'replica'), 'replica gone');
    await assert.rejects(collect(engine, genParams('xyz', { adapter: { name: 'replica' } })), (err: unknown) => err instanceof GentuneError && err.code === 'NOT_FOUND');
  } finally {
    await engine.drain(0);
  }
});
