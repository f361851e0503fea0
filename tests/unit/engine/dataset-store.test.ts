import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DatasetStore } from '../../../src/engine/dataset-store.js';
import { GentuneError } from '../../../src/common/errors.js';
import { capturingLog } from '../../helpers/capturing-log.js';
import { chunked, jsonl, silentLog, tempDir } from './engine-fixture.js';

const never = new AbortController().signal;
const MB = 1 << 20;

async function openStore() {
  const dir = join(await tempDir(), 'datasets');
  return { dir, store: await DatasetStore.open(dir, silentLog) };
}

/** Entries on disk, hidden ones included: a failed upload must leave none. */
const onDisk = async (dir: string) => readdir(dir);

function rejectsWith(code: string, pattern: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof GentuneError, String(err));
    assert.equal(err.code, code);
    assert.match(err.message, pattern);
    return true;
  };
}

test('upload streams chunks split anywhere, detects the format, hashes the bytes, and lists newest first', async () => {
  const { dir, store } = await openStore();
  const bytes = jsonl([
    { prompt: 'Héllo ', completion: 'wörld 🐳' },
    { prompt: 'a', completion: 'b' },
  ]);
  // 3-byte chunks split the multi-byte characters.
  const info = await store.upload({ name: 'greetings', format: 'auto' }, chunked(bytes, 3), never, MB);
  assert.equal(info.format, 'prompt_completion');
  assert.equal(info.numExamples, 2);
  assert.equal(info.sizeBytes, bytes.length);
  assert.equal(info.sha256, createHash('sha256').update(bytes).digest('hex'));
  assert.deepEqual(await readFile(join(dir, info.id, 'data.jsonl')), Buffer.from(bytes));

  const chat = await store.upload(
    { name: 'chat', format: 'chat' },
    chunked(jsonl([{ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'yo' }] }]), 7),
    never,
    MB,
  );
  assert.equal(chat.format, 'chat');
  assert.deepEqual(store.list().map((d) => d.id), [chat.id, info.id]);
  const read = [];
  for await (const r of store.read(info.id)) read.push(r);
  assert.deepEqual(read.map((r) => r.line), [1, 2]);
});

test('a bad line is rejected naming the line and field, and nothing is stored', async () => {
  const { dir, store } = await openStore();
  const bytes = jsonl([{ prompt: 'a', completion: 'b' }, { prompt: 'c', completion: 'd' }, { prompt: 'e' }]);
  await assert.rejects(store.upload({ name: 'bad', format: 'auto' }, chunked(bytes, 5), never, MB), rejectsWith('INVALID_ARGUMENT', /line 3: missing `completion`/));
  assert.deepEqual(await onDisk(dir), []);
  assert.deepEqual(store.list(), []);
});

test('lines must all have the declared or detected format', async () => {
  const { dir, store } = await openStore();
  const mixed = jsonl([{ text: 'x' }, { prompt: 'a', completion: 'b' }]);
  await assert.rejects(store.upload({ name: 'mixed', format: 'auto' }, chunked(mixed, 4), never, MB), rejectsWith('INVALID_ARGUMENT', /line 2: expected a text example, got prompt_completion/));
  const declared = jsonl([{ text: 'x' }]);
  await assert.rejects(store.upload({ name: 'declared', format: 'chat' }, chunked(declared, 4), never, MB), rejectsWith('INVALID_ARGUMENT', /line 1: expected a chat example, got text/));
  await assert.rejects(store.upload({ name: 'empty', format: 'auto' }, chunked(Buffer.from('\n\n'), 4), never, MB), rejectsWith('INVALID_ARGUMENT', /no examples/));
  assert.deepEqual(await onDisk(dir), []);
});

test('an upload over limits.maxUploadBytes fails with ResourceExhausted naming the limit; an aborted one stores nothing', async () => {
  const { dir, store } = await openStore();
  const bytes = jsonl(Array.from({ length: 50 }, (_, i) => ({ text: `line ${i}` })));
  await assert.rejects(store.upload({ name: 'big', format: 'auto' }, chunked(bytes, 64), never, 100), rejectsWith('RESOURCE_EXHAUSTED', /limits\.max_upload_bytes \(--max-upload-bytes\) 100 bytes/));
  const controller = new AbortController();
  async function* abortMidway() {
    let n = 0;
    for await (const c of chunked(bytes, 16)) {
      if (++n === 3) controller.abort(new Error('client went away'));
      yield c;
    }
  }
  await assert.rejects(store.upload({ name: 'aborted', format: 'auto' }, abortMidway(), controller.signal, MB), /client went away/);
  assert.deepEqual(await onDisk(dir), []);
});

test('delete removes the folder; a job using the dataset blocks it; unknown ids are NotFound', async () => {
  const { dir, store } = await openStore();
  const info = await store.upload({ name: 'd', format: 'auto' }, chunked(jsonl([{ text: 'x' }]), 100), never, MB);
  await assert.rejects(store.delete(info.id, 'ft-1'), rejectsWith('FAILED_PRECONDITION', /used by fine-tune job "ft-1"/));
  await store.delete(info.id);
  assert.deepEqual(await onDisk(dir), []);
  await assert.rejects(store.delete(info.id), rejectsWith('NOT_FOUND', /`dataset_id` ".*": no such dataset/));
});

test('after a restart datasets are listed from disk; a corrupt meta.json is reported, naming the file, and skipped; a killed upload leaves nothing', async () => {
  const { dir, store } = await openStore();
  const a = await store.upload({ name: 'a', format: 'auto' }, chunked(jsonl([{ text: 'x' }]), 100), never, MB);
  const b = await store.upload({ name: 'b', format: 'auto' }, chunked(jsonl([{ text: 'y' }]), 100), never, MB);
  await writeFile(join(dir, b.id, 'meta.json'), '{"id": tru');
  // What a process killed mid-upload leaves: its hidden temporary folder with part of the data
  // (named by atomic-write.ts: this host, the dead process's pid).
  const host = hostname().replace(/[^A-Za-z0-9_-]/g, '_') || 'host';
  const deadPid = spawnSync(process.execPath, ['-e', '']).pid!;
  const killed = join(dir, `.tmp-${host}-${deadPid}-0123456789ab`);
  await mkdir(killed);
  await writeFile(join(killed, 'data.jsonl'), '{"text": "par');
  // Another replica's upload in progress (another host, written just now) is not touched.
  const replicaUpload = `.tmp-other-host-4242-0123456789ab`;
  await mkdir(join(dir, replicaUpload));
  const { log, lines } = capturingLog();
  const reopened = await DatasetStore.open(dir, log);
  assert.deepEqual(reopened.list(), [a]);
  assert.ok(lines.some((l) => l.level === 40 && l.msg === 'skipping dataset with an unreadable meta.json' && l.file === join(dir, b.id, 'meta.json')));
  assert.deepEqual((await onDisk(dir)).sort(), [a.id, b.id, replicaUpload].sort(), "another replica's write in progress is kept");
  assert.ok(!existsSync(killed), "the dead process's leftover is removed");
});

test('two stores on one folder (two replicas): an upload on one is found by id on the other at once, listed after its refresh; a delete goes with the next refresh', async () => {
  const { dir, store: a } = await openStore();
  const b = await DatasetStore.open(dir, silentLog);
  const info = await a.upload({ name: 'shared', format: 'auto' }, chunked(jsonl([{ prompt: 'Q', completion: ' A' }]), 4), never, MB);
  assert.deepEqual(b.get(info.id), info, 'looked up on disk on a miss (FineTune on B naming it works at once)');
  const c = await DatasetStore.open(dir, silentLog);
  const late = await a.upload({ name: 'late', format: 'auto' }, chunked(jsonl([{ prompt: 'Q', completion: ' B' }]), 4), never, MB);
  assert.ok(!c.list().some((d) => d.id === late.id));
  c.refresh();
  assert.ok(c.list().some((d) => d.id === late.id), 'listed after a refresh');
  await a.delete(late.id);
  c.refresh();
  assert.ok(!c.list().some((d) => d.id === late.id), 'a delete on another replica goes with the next refresh');
});
