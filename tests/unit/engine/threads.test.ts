/**
 * The threaded engine (createEngine's default): the serving engine runs in a
 * worker thread behind a proxy, each fine-tune job in a worker of its own.
 * (a) generate, cancellation and errors cross the boundary unchanged (the
 *     in-process engine, `threads: false`, is the reference);
 * (b) a job trained in its worker publishes an adapter that Generate uses
 *     (and with maxConcurrentJobs 2, two jobs train side by side);
 * (c) training steps need nothing of the main thread: they go on while it
 *     is held, where the in-process engine's steps wait for it;
 * (d) drain terminates the workers and the process exits by itself.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Cancelled, DeadlineExceeded, FailedPrecondition, GentuneError, InvalidArgument, NotFound } from '../../../src/common/errors.js';
import type { GentuneConfig } from '../../../src/engine/config.js';
import { createEngine } from '../../../src/engine/create-engine.js';
import type { Engine, FineTuneSpec, GenerateChunk, JobEvent } from '../../../src/engine/engine-api.js';
import type { EngineMetrics, EngineSnapshot } from '../../../src/engine/engine-metrics.js';
import { chunked, collect, genParams, greedy, jsonl, silentLog, summary, tempDir, testConfig, tinyModelWithTokenizer, watchAll } from './engine-fixture.js';

/** Records the metric events and the snapshot the engine reports (they cross from the worker). */
class Recorder implements EngineMetrics {
  readonly events: [string, ...unknown[]][] = [];
  snapshot?: EngineSnapshot;
  bindEngine(s: EngineSnapshot) { this.snapshot = s; }
  onQueued(...a: unknown[]) { this.events.push(['queued', ...a]); }
  onPrefill(...a: unknown[]) { this.events.push(['prefill', ...a]); }
  onFirstToken(...a: unknown[]) { this.events.push(['first', ...a]); }
  onNextToken(...a: unknown[]) { this.events.push(['next', ...a]); }
  onFinish(...a: unknown[]) { this.events.push(['finish', ...a]); }
  onDecodeStep(...a: unknown[]) { this.events.push(['step', ...a]); }
  onAdapterLoad(...a: unknown[]) { this.events.push(['load', ...a]); }
  onAdapterEvicted() { this.events.push(['evicted']); }
  onJobStarted(...a: unknown[]) { this.events.push(['jobStarted', ...a]); }
  onJobProgress(...a: unknown[]) { this.events.push(['jobProgress', ...a]); }
  onJobEvaluation(...a: unknown[]) { this.events.push(['jobEvaluation', ...a]); }
  named(name: string) { return this.events.filter((e) => e[0] === name); }
}

const EXAMPLES = [
  { prompt: 'Q: cat? A:', completion: ' meow' },
  { prompt: 'Q: dog? A:', completion: ' woof' },
  { prompt: 'Q: cow? A:', completion: ' moo' },
  { prompt: 'Q: owl? A:', completion: ' hoot' },
  { prompt: 'Q: hen? A:', completion: ' cluck' },
  { prompt: 'Q: pig? A:', completion: ' oink' },
];

const spec = (datasetId: string, over: Partial<FineTuneSpec> = {}): FineTuneSpec => ({
  baseModel: '',
  adapter: 'animals',
  training: { datasetId },
  method: { kind: 'lora', r: 4, loraAlpha: 8, loraDropout: 0, targetModules: ['c_attn', 'c_fc'] },
  hyperparameters: { maxSteps: 4, batchSize: 3, learningRate: 1e-2, maxSeqLen: 32, validationSplit: 0.34, evalIntervalSteps: 2, seed: 1 },
  ...over,
});

const never = () => new AbortController().signal;

let modelDir: string;
let config: GentuneConfig;
let inProcessConfig: GentuneConfig;
let threaded: Engine;
let inProcess: Engine;
const recorder = new Recorder();

before(async () => {
  modelDir = await tinyModelWithTokenizer();
  config = await testConfig(modelDir, await tempDir(), { maxBatchSize: 4 });
  threaded = await createEngine(config, { log: silentLog, metrics: recorder });
  inProcessConfig = await testConfig(modelDir, await tempDir(), { maxBatchSize: 4 });
  inProcess = await createEngine(inProcessConfig, { log: silentLog, threads: false });
});

after(async () => {
  await threaded.drain(0);
  await inProcess.drain(0);
});

// Every assert.ok here has a message: without one, node:assert reads the call
// site's source to make one, which under tsx can take minutes.

/** Waits for `predicate`, polling. */
async function until(predicate: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The error `promise` rejects with. */
async function caught(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

/** Asserts `err` is a `Class` with this code and message, as the in-process engine's `reference` is. */
function sameError(err: unknown, reference: unknown, Class: new (message: string) => GentuneError, code: string): void {
  assert.ok(err instanceof Class, `expected ${Class.name}, got ${String(err)}`);
  assert.ok(reference instanceof Class, `the in-process engine threw ${String(reference)}`);
  assert.equal(err.code, code);
  assert.equal(err.message, reference.message);
}

test('(a) generate, cancellation and errors cross the thread boundary: same tokens, same error class, code and message', async () => {
  const info = threaded.info();
  assert.equal(info.ready, true);
  assert.deepEqual(info.model, inProcess.info().model);
  assert.equal(info.backend, inProcess.info().backend);

  // Greedy output, logprobs included, is what the in-process engine produces.
  const params = genParams('Hello, whale', { sampling: greedy(12), logprobs: true, topLogprobs: 3 });
  const here = summary(await collect(inProcess, params));
  const there = summary(await collect(threaded, params));
  assert.deepEqual(there.ids, here.ids);
  assert.equal(there.text, here.text);
  assert.deepEqual(there.last.finish!.reason, here.last.finish!.reason);
  const lp = (c: GenerateChunk[]) => c.flatMap((x) => x.logprobs ?? []);
  assert.deepEqual(lp(await collect(threaded, params)), lp(await collect(inProcess, params)));

  // Cancelling mid-stream ends it with finish reason `cancelled` at a step boundary.
  const controller = new AbortController();
  const chunks: GenerateChunk[] = [];
  for await (const c of threaded.generate(genParams('x', { sampling: greedy(50) }), controller.signal)) {
    chunks.push(c);
    if (chunks.length === 2) controller.abort(new Cancelled('the client went away'));
  }
  const cut = summary(chunks).last.finish!;
  assert.equal(cut.reason, 'cancelled');
  assert.ok(cut.usage.generatedTokens >= 2 && cut.usage.generatedTokens < 50, `generated ${cut.usage.generatedTokens}`);

  // A signal that aborted before the call: its reason comes back as itself.
  const late = await caught(collect(threaded, genParams('x'), AbortSignal.abort(new DeadlineExceeded('the deadline passed'))));
  assert.ok(late instanceof DeadlineExceeded && late.code === 'DEADLINE_EXCEEDED' && late.message === 'the deadline passed', String(late));

  // A consumer that stops reading early frees its batch slot.
  for await (const _ of threaded.generate(genParams('y', { sampling: greedy(50) }), never())) break;
  await until(() => {
    const s = recorder.snapshot!.sequences();
    return s.running === 0 && s.waiting === 0;
  }, 'the abandoned sequence to leave the batch');
  assert.equal(summary(await collect(threaded, genParams('z', { sampling: greedy(3) }))).last.finish!.reason, 'length');

  // Domain errors keep their class, code and message.
  const unknown = genParams('x', { adapter: { name: 'nope' } });
  const notFound = await caught(collect(threaded, unknown));
  sameError(notFound, await caught(collect(inProcess, unknown)), NotFound, 'NOT_FOUND');
  assert.equal((notFound as Error).message, '`adapter` "nope": no such adapter');
  const tooLong = genParams('x', { sampling: greedy(64) });
  sameError(await caught(collect(threaded, tooLong)), await caught(collect(inProcess, tooLong)), InvalidArgument, 'INVALID_ARGUMENT');
  sameError(await caught(threaded.getJob('ft-unknown')), await caught(inProcess.getJob('ft-unknown')), NotFound, 'NOT_FOUND');
  sameError(await caught(watchAll(threaded, 'ft-unknown')), await caught(watchAll(inProcess, 'ft-unknown')), NotFound, 'NOT_FOUND');
  const wrongBase = spec('ds-x', { baseModel: 'gpt2', training: { examples: EXAMPLES } });
  sameError(await caught(threaded.submitFineTune(wrongBase)), await caught(inProcess.submitFineTune(wrongBase)), FailedPrecondition, 'FAILED_PRECONDITION');
  // An upload streams its chunks to the worker; a bad line fails it naming the line.
  const bad = () => chunked(jsonl([{ prompt: 'a', completion: 'b' }, { prompt: 'c' }]), 5);
  const upload = (e: Engine) => caught(e.uploadDataset({ name: 'bad', format: 'auto' }, bad(), never()));
  sameError(await upload(threaded), await upload(inProcess), InvalidArgument, 'INVALID_ARGUMENT');
  assert.deepEqual(await threaded.listDatasets(), []);

  // Metric events and gauges came over from the worker.
  // Five requests were queued (the pre-aborted one and the refused ones never were), each got a first token.
  assert.equal(recorder.named('queued').length, 5, 'onQueued per admitted request');
  assert.equal(recorder.named('first').length, 5, 'onFirstToken per admitted request');
  assert.ok(recorder.named('finish').some((e) => e[1] === 'cancelled'), 'onFinish(cancelled)');
  assert.ok(recorder.snapshot!.memory().numTensors > 0, 'the base model weights, in the worker');
});

test('(b) a fine-tune job trains in a worker of its own and publishes an adapter Generate uses at once', async () => {
  const upload = (e: Engine) => e.uploadDataset({ name: 'animals', format: 'auto' }, chunked(jsonl(EXAMPLES), 10), never());
  const dataset = await upload(threaded);
  const job = await threaded.submitFineTune(spec(dataset.id));
  const events = await watchAll(threaded, job.id);
  assert.deepEqual(events.map((e) => e.type), ['queued', 'started', 'progress', 'progress', 'evaluation', 'progress', 'progress', 'evaluation', 'succeeded']);
  const done = events.at(-1)!;
  assert.ok(done.type === 'succeeded' && done.adapter === 'animals' && done.version === 1, JSON.stringify(done));

  // The job worker stored it in the store (PEFT layout, renamed into place: no temporary folder left).
  const folder = join(config.dataDir, 'adapters', 'animals');
  assert.deepEqual(await readdir(folder), ['1']);
  assert.deepEqual((await readdir(join(folder, '1'))).sort(), ['adapter_config.json', 'adapter_model.safetensors', 'gentune.json']);
  assert.equal(JSON.parse(await readFile(join(folder, '1', 'gentune.json'), 'utf8')).jobId, job.id);
  // The serving side published it from the store, resident as an in-process publish leaves it.
  const [info] = await threaded.listAdapters();
  assert.deepEqual(info.versions.map((v) => [v.version, v.method, v.r, v.jobId, v.residency]), [[1, 'lora', 4, job.id, 'loaded']]);
  const output = summary(await collect(threaded, genParams('Q: cat? A:', { sampling: greedy(6), adapter: { name: 'animals' } })));
  assert.equal(output.last.finish!.adapter, 'animals@1');
  assert.ok(recorder.named('jobStarted').some((e) => e[1] === job.id), 'onJobStarted, from the job worker through the serving worker');
  assert.ok(recorder.named('jobProgress').length >= 4, 'onJobProgress per step');

  // Same data, seed and backend on the calling thread: the same run, to the bit.
  const reference = await inProcess.submitFineTune(spec((await upload(inProcess)).id));
  const referenceEvents = await watchAll(inProcess, reference.id);
  const losses = (es: JobEvent[]) => es.flatMap((e) => (e.type === 'progress' ? [e.loss] : e.type === 'evaluation' ? [e.evalLoss] : []));
  assert.deepEqual(losses(events), losses(referenceEvents));
  const referenceOutput = summary(await collect(inProcess, genParams('Q: cat? A:', { sampling: greedy(6), adapter: { name: 'animals' } })));
  assert.deepEqual(output.ids, referenceOutput.ids);

  // Cancelling a running job is a message to its worker: it stops at a step boundary.
  const long = await threaded.submitFineTune(spec(dataset.id, { adapter: 'long', hyperparameters: { maxSteps: 500, batchSize: 2, maxSeqLen: 32 } }));
  for (let i = 0; i < 1000 && (await threaded.getJob(long.id)).step < 2; i++) await new Promise((r) => setTimeout(r, 10));
  const cancelled = await threaded.cancelJob(long.id);
  assert.equal(cancelled.state, 'cancelled');
  assert.ok(cancelled.step >= 2 && cancelled.step < 500, `cancelled at step ${cancelled.step}`);
  assert.deepEqual((await threaded.listAdapters()).map((a) => a.name), ['animals']);
});

test('(b2) with maxConcurrentJobs 2, two jobs train at once, each in its worker; two versions of one name never collide', async () => {
  const engine = await createEngine({ ...config, dataDir: await tempDir() }, { log: silentLog, maxConcurrentJobs: 2 });
  try {
    const submit = (adapter: string) => engine.submitFineTune(spec('', { adapter, training: { examples: EXAMPLES }, hyperparameters: { maxSteps: 30, batchSize: 2, maxSeqLen: 32 } }));
    const jobs = [await submit('twice'), await submit('twice'), await submit('third')];
    let overlapped = false;
    for (let i = 0; i < 1000 && !overlapped; i++) {
      overlapped = (await engine.listJobs({ limit: 10 })).filter((j) => j.state === 'running').length === 2;
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(overlapped, 'two jobs were running at the same time');
    const ends = await Promise.all(jobs.map(async (j) => (await watchAll(engine, j.id)).at(-1)!));
    assert.deepEqual(ends.map((e) => e.type), ['succeeded', 'succeeded', 'succeeded']);
    assert.deepEqual((await engine.listAdapters()).map((a) => [a.name, a.versions.map((v) => v.version)]), [['third', [1]], ['twice', [1, 2]]]);
  } finally {
    await engine.drain(0);
  }
});

/** Progress events of a job in its event log on disk (the serving side appends one as each step ends). */
function progressOnDisk(dataDir: string, jobId: string): number {
  let log = '';
  try {
    log = readFileSync(join(dataDir, 'jobs', jobId, 'events.jsonl'), 'utf8');
  } catch {
    return 0;
  }
  return log.split('\n').filter((line) => line.includes('"type":"progress"')).length;
}

/**
 * Holds this thread, without a single turn of its event loop, until the job
 * has `count` progress events on disk or `limitMs` passed; returns how many
 * it has then.
 */
function holdThread(dataDir: string, jobId: string, count: number, limitMs: number): number {
  const nap = new Int32Array(new SharedArrayBuffer(4));
  const deadline = Date.now() + limitMs;
  let n = progressOnDisk(dataDir, jobId);
  while (n < count && Date.now() < deadline) {
    Atomics.wait(nap, 0, 0, 5);
    n = progressOnDisk(dataDir, jobId);
  }
  return n;
}

test('(c) training steps need nothing of the main thread: they end while it is held; in-process they wait for it', async () => {
  const submit = (e: Engine) =>
    e.submitFineTune(spec('', { adapter: 'held', training: { examples: EXAMPLES }, hyperparameters: { maxSteps: 3, batchSize: 2, maxSeqLen: 32 } }));
  // Threaded: this thread is held from the moment the job is queued. The
  // serving worker starts it, its worker trains, and the serving worker logs
  // each step, all without a turn of this thread. (The limit is only how long
  // a broken build takes to fail.)
  const there = await submit(threaded);
  assert.equal(holdThread(config.dataDir, there.id, 2, 30_000), 2, 'two steps ended while the main thread was held');
  const events = await watchAll(threaded, there.id);
  assert.equal(events.at(-1)!.type, 'succeeded');
  const progressMs = events.flatMap((e) => (e.type === 'progress' ? [e.timeMs] : []));
  const stepMs = (progressMs[2] - progressMs[0]) / 2;

  // The control: in-process the steps run on this thread, so while it is held
  // (for three steps' time) none ends.
  const here = await submit(inProcess);
  for await (const e of inProcess.watchJob(here.id, 0, never())) if (e.type === 'started') break;
  const before = progressOnDisk(inProcessConfig.dataDir, here.id);
  assert.equal(holdThread(inProcessConfig.dataDir, here.id, before + 1, Math.max(100, 3 * stepMs)), before, 'no step ended while the main thread was held');
  assert.equal((await watchAll(inProcess, here.id)).at(-1)!.type, 'succeeded');
});

test('(d) drain stops the running job, terminates the workers, and the process exits by itself', async () => {
  const src = (path: string) => pathToFileURL(fileURLToPath(new URL(`../../../${path}`, import.meta.url))).href;
  const helper = (path: string) => pathToFileURL(fileURLToPath(new URL(path, import.meta.url))).href;
  // No process.exit: the child ends only if drain left nothing running (no worker, no timer, no handle).
  const script = `
    const { createEngine } = await import(${JSON.stringify(src('src/engine/create-engine.ts'))});
    const f = await import(${JSON.stringify(helper('./engine-fixture.ts'))});
    const config = await f.testConfig(${JSON.stringify(modelDir)}, await f.tempDir());
    const engine = await createEngine(config, { log: f.silentLog });
    await f.collect(engine, f.genParams('hi', { sampling: f.greedy(4) }));
    const job = await engine.submitFineTune({ baseModel: '', adapter: 'cut', training: { examples: ${JSON.stringify(EXAMPLES)} },
      method: { kind: 'lora', targetModules: [] }, hyperparameters: { maxSteps: 5000, batchSize: 2, maxSeqLen: 32 } });
    while ((await engine.getJob(job.id)).step < 1) await new Promise((r) => setTimeout(r, 10));
    const t0 = Date.now();
    await engine.drain(0);
    let after = '';
    try { await engine.getJob(job.id); } catch (err) { after = err.code; }
    console.log(JSON.stringify({ drainMs: Date.now() - t0, ready: engine.isReady(), after }));
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the process did not exit after drain; stdout: ${stdout}; stderr: ${stderr}`));
    }, 60_000);
    child.on('exit', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  assert.equal(code, 0, stderr);
  const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as { drainMs: number; ready: boolean; after: string };
  assert.equal(result.ready, false);
  assert.equal(result.after, 'UNAVAILABLE', 'after drain the proxy refuses calls');
  // The job worker is terminated, not waited for: drain(0) does not wait for a step boundary.
  assert.ok(result.drainMs < 5000, `drain took ${result.drainMs} ms`);
});
