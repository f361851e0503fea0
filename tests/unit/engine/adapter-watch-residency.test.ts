// Residency (issue "Model manager and scheduler", item 2): adapters load on
// first use and are evicted least recently used first under the byte budget
// and under --max-adapters; LoadAdapter pins; --preload loads at start;
// ListAdapters reports residency, bytes, requests served and last use.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Command } from 'commander';
import { AdapterRegistry, type AdapterVersionUsage } from '../../../src/engine/adapter-registry.js';
import { AdapterStore } from '../../../src/engine/adapter-store.js';
import { addConfigOptions, defaultConfig, resolveConfig } from '../../../src/engine/config.js';
import { type Adapter, disposeAdapter } from '../../../src/model/adapter.js';
import { initLoraAdapter } from '../../../src/model/adapter-init.js';
import { saveAdapter } from '../../../src/model/checkpoint/peft-adapter.js';
import { testBackend, TINY } from '../../helpers/tiny-model.js';
import { silentLog, tempDir } from './engine-fixture.js';

let adapter: Adapter;

before(async () => {
  await testBackend();
  adapter = initLoraAdapter(TINY, { r: 2, loraAlpha: 4, loraDropout: 0, targetModules: ['attn.c_attn'], useRslora: false }, { seed: 1, init: false, baseModel: 'tiny' });
});

after(() => disposeAdapter(adapter));

/** A store holding `names` (version 1 each, plus version 2 of the first), and a registry over it. */
async function registryWith(names: string[], maxAdapters: number) {
  const dir = join(await tempDir(), 'adapters');
  for (const name of names) await saveAdapter(join(dir, name, '1'), adapter, TINY);
  await saveAdapter(join(dir, names[0], '2'), adapter, TINY);
  const store = await AdapterStore.open(dir, TINY, silentLog, { watch: false });
  return new AdapterRegistry(store, silentLog, undefined, undefined, { maxAdapters });
}

const residency = (r: AdapterRegistry) =>
  Object.fromEntries(r.list().flatMap((a) => a.versions.map((v) => [`${a.name}@${v.version}`, v.residency])));

test('--max-adapters: idle unpinned versions are evicted least recently used first once the count passes it; pinned and leased ones stay', async () => {
  const registry = await registryWith(['a', 'b', 'c', 'd'], 2);
  try {
    const use = async (name: string) => (await registry.acquire({ name, version: 1 })).release();
    await use('a');
    await use('b');
    assert.equal(registry.residentCount, 2);
    await use('a'); // b is now the least recently used
    await use('c');
    assert.deepEqual(residency(registry), { 'a@1': 'loaded', 'a@2': 'stored', 'b@1': 'stored', 'c@1': 'loaded', 'd@1': 'stored' });
    // LoadAdapter with pin: never evicted, even past the count.
    await registry.load({ name: 'd' }, true);
    await registry.load({ name: 'b' }, true);
    assert.equal(residency(registry)['d@1'], 'pinned');
    assert.equal(residency(registry)['b@1'], 'pinned');
    assert.equal(registry.residentCount, 2, 'the idle unpinned ones made room');
    // A version held by a request is not evicted either.
    const held = await registry.acquire({ name: 'a' });
    assert.equal(held.label, 'a@2');
    assert.equal(registry.residentCount, 3);
    held.release();
    assert.equal(registry.residentCount, 2);
    registry.unload({ name: 'd' });
    assert.equal(residency(registry)['d@1'], 'stored');
  } finally {
    registry.dispose();
  }
});

test('preload loads what --preload names (latest when no version) without pinning, and skips what does not exist', async () => {
  const registry = await registryWith(['a', 'b', 'c'], 32);
  try {
    const loaded = await registry.preload([{ name: 'a' }, { name: 'b', version: 1 }, { name: 'missing' }, { name: 'c', version: 9 }]);
    assert.deepEqual(loaded, ['a@2', 'b@1']);
    assert.deepEqual(residency(registry), { 'a@1': 'stored', 'a@2': 'loaded', 'b@1': 'loaded', 'c@1': 'stored' });
    // Preloading is not serving.
    const v = registry.info('a').versions[1] as AdapterVersionUsage;
    assert.equal(v.requestsServed, 0);
    assert.equal(v.lastUsedAtMs, undefined);
  } finally {
    registry.dispose();
  }
});

test('ListAdapters: residency, bytes, requests served and last use per version', async () => {
  const registry = await registryWith(['a'], 32);
  try {
    const t0 = Date.now();
    for (let i = 0; i < 3; i++) (await registry.acquire({ name: 'a' })).release();
    (await registry.acquire({ name: 'a', version: 1 })).release();
    const [v1, v2] = registry.info('a').versions as AdapterVersionUsage[];
    assert.deepEqual([v1.requestsServed, v2.requestsServed], [1, 3]);
    assert.ok(v2.lastUsedAtMs! >= t0 && v2.lastUsedAtMs! <= Date.now());
    assert.ok(v1.sizeBytes > 0 && v1.sizeBytes === v2.sizeBytes);
    assert.deepEqual([v1.residency, v2.residency], ['loaded', 'loaded']);
  } finally {
    registry.dispose();
  }
});

test('config: --max-adapters, --preload, --prefill-chunk and --adapter-rescan-ms, from flags or GENTUNE_*', () => {
  const parse = (argv: string[], env: Record<string, string> = {}) => {
    const cmd = addConfigOptions(new Command('serve').exitOverride());
    cmd.parse(argv, { from: 'user' });
    return resolveConfig(cmd.opts(), env);
  };
  const d = defaultConfig();
  assert.deepEqual([d.maxAdapters, d.preload, d.limits.prefillChunk, d.adapterRescanMs], [32, [], 64, 2000]);
  const c = parse(['--max-adapters', '4', '--preload', 'chat, summarize@3,', '--prefill-chunk', '16'], { GENTUNE_ADAPTER_RESCAN_MS: '0' });
  assert.equal(c.maxAdapters, 4);
  assert.deepEqual(c.preload, [{ name: 'chat' }, { name: 'summarize', version: 3 }]);
  assert.equal(c.limits.prefillChunk, 16);
  assert.equal(c.adapterRescanMs, 0);
  assert.deepEqual(parse([], { GENTUNE_PRELOAD: 'a@1' }).preload, [{ name: 'a', version: 1 }]);
  assert.throws(() => parse(['--preload', 'chat@0']), /`--preload` must be a comma-separated list .*, got "chat@0"$/);
  assert.throws(() => parse(['--preload', '../etc']), /`--preload` .* got "\.\.\/etc"/);
  assert.throws(() => parse(['--max-adapters', '0']), /`--max-adapters` must be an integer in 1\.\.\d+, got "0"/);
  assert.throws(() => parse([], { GENTUNE_PREFILL_CHUNK: 'x' }), /`--prefill-chunk` .* \(from GENTUNE_PREFILL_CHUNK\)/);
});
