import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { AdapterRegistry, adapterBytes } from '../../../src/engine/adapter-registry.js';
import { AdapterStore } from '../../../src/engine/adapter-store.js';
import { type Adapter, disposeAdapter } from '../../../src/model/adapter.js';
import { initLastLayersAdapter, initLoraAdapter } from '../../../src/model/adapter-init.js';
import type { GptWeights } from '../../../src/model/gpt-weights.js';
import { disposeWeights } from '../../../src/model/gpt-weights.js';
import { testBackend, TINY, tinyWeights } from '../../helpers/tiny-model.js';
import { silentLog, tempDir } from './engine-fixture.js';

let base: GptWeights;

before(async () => {
  await testBackend();
  base = tinyWeights(TINY, 3);
});

after(() => disposeWeights(base));

const lora = (seed: number): Adapter =>
  initLoraAdapter(TINY, { r: 2, loraAlpha: 4, loraDropout: 0, targetModules: ['attn.c_attn', 'mlp.c_fc'], useRslora: false }, { seed, init: false, baseModel: 'tiny' });

async function open(budget?: number, now?: () => number) {
  const dir = join(await tempDir(), 'adapters');
  const store = await AdapterStore.open(dir, TINY, silentLog);
  return { dir, store, registry: new AdapterRegistry(store, silentLog, budget, undefined, { now }) };
}

async function values(a: Adapter): Promise<number[]> {
  if (a.kind !== 'lora') throw new Error('lora expected');
  return Array.from(await a.lora.modules.get('0.attn.c_attn')!.b.data());
}

test('publish stores versions 1, 2, ... in PEFT layout; latest resolves by default', async () => {
  const { dir, registry } = await open();
  const v1 = await registry.publish('chat', lora(1), 'ft-1');
  const v2 = await registry.publish('chat', lora(2), 'ft-2');
  assert.deepEqual([v1.version, v2.version], [1, 2]);
  assert.deepEqual((await readdir(join(dir, 'chat', '1'))).sort(), ['adapter_config.json', 'adapter_model.safetensors', 'gentune.json']);
  assert.equal(registry.resolve({ name: 'chat' }).version, 2);
  assert.equal(registry.resolve({ name: 'chat', version: 1 }).version, 1);
  assert.throws(() => registry.resolve({ name: 'chat', version: 9 }), /`adapter` "chat@9": no such adapter version \(latest is 2\)/);
  assert.throws(() => registry.resolve({ name: 'nope' }, 'adapters[0]'), /`adapters\[0\]` "nope": no such adapter/);
  const [info] = registry.list();
  assert.equal(info.name, 'chat');
  assert.equal(info.latestVersion, 2);
  assert.deepEqual(info.versions.map((v) => [v.version, v.method, v.r, v.loraAlpha, v.jobId, v.residency]), [
    [1, 'lora', 2, 4, 'ft-1', 'loaded'],
    [2, 'lora', 2, 4, 'ft-2', 'loaded'],
  ]);
  assert.deepEqual(info.versions[0].targetModules, ['c_attn', 'c_fc']);
  registry.dispose();
});

test('a version is loaded on first use from disk, shared by leases, and equal to what was published', async () => {
  const { dir, registry } = await open();
  const published = lora(5);
  const expected = await values(published);
  await registry.publish('x', published);
  registry.unload({ name: 'x' });
  assert.equal(registry.info('x').versions[0].residency, 'stored');
  // A fresh registry over the same folder (a restart) loads it from disk.
  const reopened = new AdapterRegistry(await AdapterStore.open(dir, TINY, silentLog), silentLog);
  const [a, b] = await Promise.all([reopened.acquire({ name: 'x' }), reopened.acquire({ name: 'x', version: 1 })]);
  assert.equal(a.adapter, b.adapter);
  assert.equal(a.label, 'x@1');
  const got = await values(a.adapter);
  got.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-6));
  assert.equal(reopened.info('x').versions[0].residency, 'loaded');
  assert.ok(reopened.info('x').versions[0].lastUsedAtMs! > 0);
  a.release();
  b.release();
  reopened.dispose();
});

test('deleting a version in use keeps its tensors until the last lease is released', async () => {
  const { dir, registry } = await open();
  const before = tf.memory().numTensors;
  await registry.publish('gone', lora(7));
  const lease = await registry.acquire({ name: 'gone' });
  await registry.delete({ name: 'gone' });
  assert.deepEqual(registry.list(), []);
  assert.deepEqual(await readdir(dir), []);
  assert.throws(() => registry.resolve({ name: 'gone' }), /no such adapter/);
  // Still usable by the request holding it.
  assert.equal((await values(lease.adapter)).length > 0, true);
  assert.ok(tf.memory().numTensors > before);
  lease.release();
  lease.release(); // idempotent
  assert.equal(tf.memory().numTensors, before);
});

test('idle unpinned versions are evicted least recently used first when over the byte budget; pinned ones stay', async () => {
  const probe = lora(0);
  const one = adapterBytes(probe);
  disposeAdapter(probe);
  // The registry's clock, set by hand: each use below comes one millisecond after the one before.
  let nowMs = 0;
  const { registry } = await open(3 * one, () => nowMs);
  for (const name of ['a', 'b', 'c', 'd']) {
    await registry.publish(name, lora(name.charCodeAt(0)));
    registry.unload({ name });
  }
  await registry.load({ name: 'a' }, true); // pinned, and the oldest
  nowMs = 1;
  await registry.load({ name: 'b' }, false);
  nowMs = 2;
  await registry.load({ name: 'c' }, false);
  nowMs = 3;
  (await registry.acquire({ name: 'b' })).release(); // b was loaded before c but used after it
  nowMs = 4;
  await registry.load({ name: 'd' }, false); // over budget: c (idle, least recently used, unpinned) goes
  const residency = () => registry.list().map((i) => `${i.name}:${i.versions[0].residency}`);
  assert.deepEqual(residency(), ['a:pinned', 'b:loaded', 'c:stored', 'd:loaded']);
  registry.unload({ name: 'a' });
  assert.deepEqual(residency(), ['a:stored', 'b:loaded', 'c:stored', 'd:loaded']);
  registry.dispose();
});

test('last_layers adapters round-trip through the store', async () => {
  const { registry } = await open();
  const before = tf.memory().numTensors;
  const stored = await registry.publish('top', initLastLayersAdapter(base, 1, 'tiny'));
  assert.equal(stored.method, 'last_layers');
  assert.equal(stored.r, 0);
  registry.unload({ name: 'top' });
  assert.equal(tf.memory().numTensors, before);
  const lease = await registry.acquire({ name: 'top' });
  assert.equal(lease.adapter.kind, 'last_layers');
  lease.release();
  await registry.delete({ name: 'top', version: 1 });
  assert.equal(tf.memory().numTensors, before);
});

test('a stored version that does not load is FailedPrecondition without server paths, and stays unloaded', async () => {
  const { dir, registry } = await open();
  await registry.publish('broken', lora(9));
  registry.unload({ name: 'broken' });
  await writeFile(join(dir, 'broken', '1', 'adapter_config.json'), '{"peft_type": "PREFIX_TUNING"}');
  await assert.rejects(registry.acquire({ name: 'broken' }), (err: Error) => {
    assert.equal((err as { code?: string }).code, 'FAILED_PRECONDITION');
    // The reason reaches the client (issue 18), without the folder's path.
    assert.equal(err.message, 'adapter "broken@1" is stored but cannot be loaded: adapter_config.json: unknown `peft_type` "PREFIX_TUNING" (supported: LORA, LAST_LAYERS)');
    return true;
  });
  assert.equal(registry.info('broken').versions[0].residency, 'stored');
});
