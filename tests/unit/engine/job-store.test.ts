import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FineTuneSpec, JobEvent } from '../../../src/engine/engine-api.js';
import { INTERRUPTED_REASON, JobStore, MAX_STARTS_WITHOUT_CHECKPOINT } from '../../../src/engine/job-store.js';
import { capturingLog } from '../../helpers/capturing-log.js';
import { silentLog, tempDir } from './engine-fixture.js';

const spec = (adapter = 'a'): FineTuneSpec => ({
  baseModel: '',
  adapter,
  training: { examples: [{ text: 'x' }] },
  method: { kind: 'lora', targetModules: [] },
  hyperparameters: { maxSteps: 2 },
});

const metrics = { trainLoss: 1, steps: 2, tokens: 10, trainSeconds: 0.1 };

async function openStore() {
  const dir = join(await tempDir(), 'jobs');
  return { dir, store: await JobStore.open(dir, silentLog) };
}

async function drain(it: AsyncIterable<JobEvent>): Promise<JobEvent[]> {
  const out: JobEvent[] = [];
  for await (const e of it) out.push(e);
  return out;
}

/**
 * The first `n` events of a watch. The watch has then replayed them, and the
 * next read (a drain) finds nothing more in the log and waits to be woken by
 * an append: a generator runs up to its `await` within the read's microtasks,
 * before any append, which completes only after file I/O.
 */
async function take(watch: AsyncIterator<JobEvent>, n: number): Promise<JobEvent[]> {
  const out: JobEvent[] = [];
  while (out.length < n) {
    const r = await watch.next();
    assert.ok(!r.done, `the watch ended after ${out.length} events`);
    out.push(r.value);
  }
  return out;
}

test('state is derived from the event log; appends are durable lines', async () => {
  const { dir, store } = await openStore();
  const job = await store.create(spec(), 0);
  assert.equal(job.state, 'queued');
  await store.append(job.id, { type: 'started', totalSteps: 2, numTrainExamples: 1, numValidationExamples: 0, trainableParameters: 5 });
  assert.equal(store.get(job.id).state, 'running');
  await store.append(job.id, { type: 'progress', step: 1, totalSteps: 2, epoch: 1, loss: 3.5, learningRate: 1e-3, gradNorm: 1, tokensPerSecond: 100, etaSeconds: 1 });
  assert.equal(store.get(job.id).loss, 3.5);
  await store.append(job.id, { type: 'succeeded', adapter: 'a', version: 1, metrics });
  const done = store.get(job.id);
  assert.equal(done.state, 'succeeded');
  assert.equal(done.adapterVersion, 1);
  assert.ok(done.finishedAtMs !== undefined && done.startedAtMs !== undefined);
  const lines = (await readFile(join(dir, job.id, 'events.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((e) => [e.sequence, e.type]), [[0, 'queued'], [1, 'started'], [2, 'progress'], [3, 'succeeded']]);
});

test('watch replays the history, then follows live events, and ends after the terminal one', async () => {
  const { store } = await openStore();
  const job = await store.create(spec(), 0);
  await store.append(job.id, { type: 'started', totalSteps: 2, numTrainExamples: 1, numValidationExamples: 0, trainableParameters: 5 });
  const watch = store.watch(job.id, 0, new AbortController().signal);
  const lateWatch = store.watch(job.id, 1, new AbortController().signal);
  const history = await take(watch, 2);
  const lateHistory = await take(lateWatch, 1);
  // Both have replayed the log and now wait: the next events reach them only as live ones.
  const watching = drain(watch);
  const late = drain(lateWatch);
  await store.append(job.id, { type: 'checkpoint', step: 1 });
  await store.append(job.id, { type: 'cancelled' });
  const all = [...history, ...(await watching)];
  assert.deepEqual(all.map((e) => e.type), ['queued', 'started', 'checkpoint', 'cancelled']);
  assert.deepEqual([...lateHistory, ...(await late)].map((e) => e.sequence), [1, 2, 3]);
  // A finished job replays from disk.
  assert.deepEqual(await drain(store.watch(job.id, 0, new AbortController().signal)), all);
  assert.deepEqual((await drain(store.watch(job.id, 3, new AbortController().signal))).map((e) => e.type), ['cancelled']);
});

test('an aborted watch ends without waiting for more events', async () => {
  const { store } = await openStore();
  const job = await store.create(spec(), 0);
  const controller = new AbortController();
  const watch = store.watch(job.id, 0, controller.signal);
  assert.deepEqual((await take(watch, 1)).map((e) => e.type), ['queued']);
  // It waits for the next event; only the abort can end that wait.
  const next = watch.next();
  controller.abort();
  assert.deepEqual(await next, { done: true, value: undefined });
});

test('list filters by state and adapter, newest first; unknown ids are NotFound', async () => {
  const { store } = await openStore();
  const a = await store.create(spec('x'), 0);
  const b = await store.create(spec('y'), 1);
  const c = await store.create(spec('x'), 2);
  await store.append(b.id, { type: 'failed', reason: 'boom' });
  assert.deepEqual(store.list({ limit: 10 }).map((j) => j.id), [c.id, b.id, a.id]);
  assert.deepEqual(store.list({ limit: 10, adapter: 'x' }).map((j) => j.id), [c.id, a.id]);
  assert.deepEqual(store.list({ limit: 10, state: 'failed' }).map((j) => j.id), [b.id]);
  assert.deepEqual(store.list({ limit: 1 }).map((j) => j.id), [c.id]);
  assert.deepEqual(store.queued().map((j) => j.id), [a.id, c.id]);
  assert.throws(() => store.get('ft-nope'), /`job_id` "ft-nope": no such fine-tune job/);
});

test('after a restart jobs are re-listed; a job that was running stays running, to resume; a torn line is skipped', async () => {
  const { dir, store } = await openStore();
  const queued = await store.create(spec(), 0);
  const running = await store.create(spec(), 1);
  await store.append(running.id, { type: 'started', totalSteps: 2, numTrainExamples: 1, numValidationExamples: 0, trainableParameters: 5 });
  const done = await store.create(spec(), 2);
  await store.append(done.id, { type: 'succeeded', adapter: 'a', version: 3, metrics });
  await store.close();
  // The process died mid-append.
  await appendFile(join(dir, running.id, 'events.jsonl'), '{"jobId":"x","seq');

  const { log, lines } = capturingLog();
  const reopened = await JobStore.open(dir, log);
  assert.ok(
    lines.some((l) => l.msg === 'skipping a torn line of a job log' && l.file === join(dir, running.id, 'events.jsonl') && l.line === 3),
    'the torn line is reported, naming the file and the line',
  );
  assert.equal(reopened.get(queued.id).state, 'queued');
  assert.equal(reopened.get(done.id).state, 'succeeded');
  assert.equal(reopened.get(done.id).adapterVersion, 3);
  assert.equal(reopened.get(running.id).state, 'running');
  assert.deepEqual(reopened.interrupted().map((j) => j.id), [running.id]);
  assert.deepEqual(reopened.queued().map((j) => j.id), [queued.id]);
  // The runner resumes it: the next append goes on a new line, numbered after the last good event.
  await reopened.append(running.id, { type: 'started', totalSteps: 2, numTrainExamples: 1, numValidationExamples: 0, trainableParameters: 5, resumedFromStep: 1 });
  assert.equal(reopened.get(running.id).step, 1);
  await reopened.append(running.id, { type: 'failed', reason: 'gone' });
  const events = await drain(reopened.watch(running.id, 0, new AbortController().signal));
  assert.deepEqual(events.map((e) => [e.sequence, e.type]), [[0, 'queued'], [1, 'started'], [2, 'started'], [3, 'failed']]);
  // A job still queued after the restart streams its new events to watchers.
  const watch = reopened.watch(queued.id, 0, new AbortController().signal);
  const replayed = await take(watch, 1);
  const following = drain(watch);
  await reopened.append(queued.id, { type: 'started', totalSteps: 2, numTrainExamples: 1, numValidationExamples: 0, trainableParameters: 5 });
  await reopened.append(queued.id, { type: 'cancelled' });
  assert.deepEqual([...replayed, ...(await following)].map((e) => [e.sequence, e.type]), [[0, 'queued'], [1, 'started'], [2, 'cancelled']]);
  // And once more: the log stays readable.
  const again = await JobStore.open(dir, silentLog);
  assert.equal(again.get(running.id).error, 'gone');
  await reopened.close();
  await again.close();
});

test('a job that keeps dying before its next checkpoint is failed; a checkpoint resets the count; the checkpoint goes when the job ends', async () => {
  const { dir, store } = await openStore();
  const started = { type: 'started', totalSteps: 9, numTrainExamples: 1, numValidationExamples: 0, trainableParameters: 5 } as const;
  const looping = await store.create(spec(), 0);
  const saved = await store.create(spec(), 1);
  for (let i = 0; i < MAX_STARTS_WITHOUT_CHECKPOINT; i++) {
    await store.append(looping.id, started);
    await store.append(saved.id, started);
  }
  await store.append(saved.id, { type: 'checkpoint', step: 4 });
  await store.append(saved.id, started);
  await writeFile(store.checkpointPath(saved.id), 'not really a checkpoint');
  await writeFile(join(dir, saved.id, '.checkpoint.safetensors.123.abcdef.tmp'), 'half written');
  await store.close();

  const reopened = await JobStore.open(dir, silentLog);
  // The runner asks, once it holds a job's lease and has adopted it.
  await reopened.adopt(looping.id);
  assert.equal(await reopened.failIfLooping(looping.id), true);
  const failed = reopened.get(looping.id);
  assert.equal(failed.state, 'failed');
  assert.equal(failed.error, `${INTERRUPTED_REASON} ${MAX_STARTS_WITHOUT_CHECKPOINT} times without reaching a new checkpoint`);
  // Another replica's checkpoint write may be in progress in a job nobody here holds: its temporary file stays until the job is adopted.
  assert.ok((await readdir(join(dir, saved.id))).includes('.checkpoint.safetensors.123.abcdef.tmp'));
  await reopened.adopt(saved.id);
  assert.equal(await reopened.failIfLooping(saved.id), false);
  assert.equal(reopened.get(saved.id).state, 'running');
  assert.deepEqual(reopened.interrupted().map((j) => j.id), [saved.id]);
  // A checkpoint's temporary file left by a kill is removed at adoption; the checkpoint stays until the job ends.
  assert.deepEqual((await readdir(join(dir, saved.id))).sort(), ['checkpoint.safetensors', 'events.jsonl', 'spec.json']);
  await reopened.append(saved.id, { type: 'cancelled' });
  assert.deepEqual((await readdir(join(dir, saved.id))).sort(), ['events.jsonl', 'spec.json']);
  await reopened.close();
});

test('a job whose spec.json or log does not read is reported, naming the file, and skipped', async () => {
  const { dir, store } = await openStore();
  const good = await store.create(spec(), 0);
  const badSpec = await store.create(spec(), 1);
  const noLog = await store.create(spec(), 2);
  await store.close();
  await writeFile(join(dir, badSpec.id, 'spec.json'), '{"id": "x", "spec": {"adap');
  await rm(join(dir, noLog.id, 'events.jsonl'));
  const { log, lines } = capturingLog();
  const reopened = await JobStore.open(dir, log);
  assert.deepEqual(reopened.list({ limit: 10 }).map((j) => j.id), [good.id]);
  assert.ok(lines.some((l) => l.msg === 'skipping fine-tune job with an unreadable spec.json' && l.file === join(dir, badSpec.id, 'spec.json')));
  assert.ok(lines.some((l) => l.msg === 'skipping fine-tune job with an unreadable event log' && l.file === join(dir, noLog.id, 'events.jsonl')));
  await reopened.close();
});

test('two stores on one folder (two replicas): a job created on one is found by the other at once, its events follow by refresh; an append whose lease is gone writes nothing', async () => {
  const { dir, store: a } = await openStore();
  const b = await JobStore.open(dir, silentLog);
  const job = await a.create(spec('shared'), 0);
  assert.equal(b.get(job.id).state, 'queued', 'looked up on disk on a miss');
  const watch = b.watch(job.id, 0, new AbortController().signal);
  const followed = drain(watch);
  await a.adopt(job.id);
  await a.append(job.id, { type: 'started', totalSteps: 2, numTrainExamples: 1, numValidationExamples: 0, trainableParameters: 5 });
  // The lease ran out while this append waited: it is refused and the log is unchanged.
  await assert.rejects(a.append(job.id, { type: 'checkpoint', step: 1 }, () => false), /its lease was lost/);
  assert.equal((await readFile(join(dir, job.id, 'events.jsonl'), 'utf8')).trimEnd().split('\n').length, 2);
  b.refresh();
  assert.equal(b.get(job.id).state, 'running');
  // B takes over: it reads the log again, and numbers on from A's last event.
  await a.disown(job.id);
  await b.adopt(job.id);
  await b.append(job.id, { type: 'succeeded', adapter: 'shared', version: 1, metrics });
  a.refresh();
  assert.equal(a.get(job.id).state, 'succeeded');
  assert.deepEqual((await followed).map((e) => [e.sequence, e.type]), [[0, 'queued'], [1, 'started'], [2, 'succeeded']]);
  await a.close();
  await b.close();
});
