// Store integrity (issue 18): nothing under the data directory is followed
// through a symbolic link, in any store. Links planted in a dataset's and a
// job's folder, and a linked adapter name, must neither be read nor written
// through, and a delete must never reach what they point to.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AdapterStore } from '../../../src/engine/adapter-store.js';
import { DatasetStore } from '../../../src/engine/dataset-store.js';
import type { FineTuneSpec } from '../../../src/engine/engine-api.js';
import { JobStore } from '../../../src/engine/job-store.js';
import { disposeAdapter } from '../../../src/model/adapter.js';
import { initLoraAdapter } from '../../../src/model/adapter-init.js';
import { saveAdapter } from '../../../src/model/checkpoint/peft-adapter.js';
import { testBackend, TINY } from '../../helpers/tiny-model.js';
import { chunked, jsonl, silentLog, tempDir } from './engine-fixture.js';

const never = new AbortController().signal;
const SECRET = 'not for clients\n';

test('a dataset whose data.jsonl is a link is not listed, and its target is never read', async () => {
  const root = await tempDir();
  const secret = join(root, 'secret.txt');
  await writeFile(secret, SECRET);
  const dir = join(root, 'datasets');
  const store = await DatasetStore.open(dir, silentLog);
  const info = await store.upload({ name: 'd', format: 'auto' }, chunked(jsonl([{ text: 'x' }]), 4), never, 1 << 20);
  const data = join(dir, info.id, 'data.jsonl');
  await rm(data);
  await symlink(secret, data);
  // A store that has it listed (the link appeared later) refuses to read through it...
  await assert.rejects(store.content(info.id), /symbolic link/);
  await assert.rejects(async () => {
    for await (const _ of store.read(info.id)) void _;
  }, /symbolic link/);
  // ...and a store that opens now does not list it.
  const reopened = await DatasetStore.open(dir, silentLog);
  assert.deepEqual(reopened.list(), []);
});

test('a job whose events.jsonl is a link is skipped, and an append never writes through it', async () => {
  const root = await tempDir();
  const secret = join(root, 'secret.txt');
  await writeFile(secret, SECRET);
  const dir = join(root, 'jobs');
  const spec: FineTuneSpec = { baseModel: '', adapter: 'a', training: { examples: [{ text: 'x' }] }, method: { kind: 'lora', targetModules: [] }, hyperparameters: { maxSteps: 2 } };
  const store = await JobStore.open(dir, silentLog);
  const job = await store.create(spec, 0);
  const events = join(dir, job.id, 'events.jsonl');
  await rm(events);
  await symlink(secret, events);
  await assert.rejects(store.append(job.id, { type: 'started', totalSteps: 2, numTrainExamples: 1, numValidationExamples: 0, trainableParameters: 1 }), /ELOOP|symbolic link/);
  assert.equal(await readFile(secret, 'utf8'), SECRET);
  const reopened = await JobStore.open(dir, silentLog);
  assert.deepEqual(reopened.list({ limit: 10 }), []);
});

test('an adapter name linked outside the store is never listed, refreshed or deleted through', async () => {
  await testBackend();
  const root = await tempDir();
  const outside = join(root, 'outside');
  const adapter = initLoraAdapter(TINY, { r: 4, loraAlpha: 8, loraDropout: 0, targetModules: ['attn.c_attn'], useRslora: false }, { seed: 3, init: false, baseModel: 'tiny' });
  try {
    await saveAdapter(join(outside, '1'), adapter, TINY);
  } finally {
    disposeAdapter(adapter);
  }
  const dir = join(root, 'adapters');
  await mkdir(dir, { recursive: true });
  await symlink(outside, join(dir, 'linked'));
  const store = await AdapterStore.open(dir, TINY, silentLog, { watch: false });
  try {
    await store.refresh(['linked']);
    assert.deepEqual(store.versions('linked'), []);
    await store.delete('linked', 1);
    assert.deepEqual((await readdir(join(outside, '1'))).sort(), ['adapter_config.json', 'adapter_model.safetensors']);
  } finally {
    store.close();
  }
});
