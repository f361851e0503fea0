import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { GentuneError } from '../../../src/common/errors.js';
import type { GentuneConfig } from '../../../src/engine/config.js';
import { createEngine } from '../../../src/engine/create-engine.js';
import type { DatasetInfo, Engine, FineTuneSpec, JobEvent, JobInfo } from '../../../src/engine/engine-api.js';
import { chunked, collect, genParams, greedy, jsonl, servingMemory, silentLog, summary, tempDir, testConfig, tinyModelWithTokenizer, watchAll } from './engine-fixture.js';

let config: GentuneConfig;
let engine: Engine;
let dataset: DatasetInfo;

const EXAMPLES = [
  { prompt: 'Q: cat? A:', completion: ' meow' },
  { prompt: 'Q: dog? A:', completion: ' woof' },
  { prompt: 'Q: cow? A:', completion: ' moo' },
  { prompt: 'Q: owl? A:', completion: ' hoot' },
  { prompt: 'Q: hen? A:', completion: ' cluck' },
  { prompt: 'Q: pig? A:', completion: ' oink' },
];

const spec = (over: Partial<FineTuneSpec> = {}): FineTuneSpec => ({
  baseModel: '',
  adapter: 'animals',
  training: { datasetId: dataset.id },
  method: { kind: 'lora', r: 4, loraAlpha: 8, loraDropout: 0, targetModules: ['c_attn', 'c_fc'] },
  hyperparameters: { maxSteps: 4, batchSize: 3, learningRate: 1e-2, maxSeqLen: 32, validationSplit: 0.34, evalIntervalSteps: 2, seed: 1 },
  ...over,
});

function rejectsWith(code: string, pattern: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof GentuneError, String(err));
    assert.equal(err.code, code);
    assert.match(err.message, pattern);
    return true;
  };
}

before(async () => {
  config = await testConfig(await tinyModelWithTokenizer(), await tempDir(), { maxBatchSize: 4 });
  engine = await createEngine(config, { log: silentLog });
  dataset = await engine.uploadDataset({ name: 'animals', format: 'auto' }, chunked(jsonl(EXAMPLES), 10), new AbortController().signal);
});

after(() => engine.drain(0));

let trained: JobInfo;
let adapterOutput: number[];

test('a fine-tune job runs end to end, publishes a new adapter version, and generate uses it at once', async () => {
  // The job trains in a worker of its own; the serving worker adopts what it published.
  const before = await servingMemory(engine, 'threaded');
  const job = await engine.submitFineTune(spec());
  assert.equal(job.state, 'queued');
  const events = await watchAll(engine, job.id);
  const types = events.map((e) => e.type);
  assert.deepEqual(types, ['queued', 'started', 'progress', 'progress', 'evaluation', 'progress', 'progress', 'evaluation', 'succeeded']);
  assert.deepEqual(events.map((e) => e.sequence), events.map((_, i) => i));
  const started = events[1];
  assert.ok(started.type === 'started' && started.totalSteps === 4 && started.numTrainExamples === 4 && started.numValidationExamples === 2);
  const done = events.at(-1)!;
  assert.ok(done.type === 'succeeded');
  assert.equal(done.adapter, 'animals');
  assert.equal(done.version, 1);
  assert.equal(done.metrics.steps, 4);
  assert.ok(Number.isFinite(done.metrics.trainLoss) && Number.isFinite(done.metrics.evalLoss!));

  trained = await engine.getJob(job.id);
  assert.equal(trained.state, 'succeeded');
  assert.equal(trained.adapterVersion, 1);
  assert.equal(trained.step, 4);
  const [info] = await engine.listAdapters();
  assert.equal(info.name, 'animals');
  assert.deepEqual(info.versions.map((v) => [v.version, v.method, v.r, v.jobId, v.residency]), [[1, 'lora', 4, job.id, 'loaded']]);

  const chunks = await collect(engine, genParams('Q: cat? A:', { sampling: greedy(6), adapter: { name: 'animals' } }));
  assert.equal(summary(chunks).last.finish!.adapter, 'animals@1');
  adapterOutput = summary(chunks).ids;

  // What the job left on the serving backend is the published adapter, nothing more.
  await engine.unloadAdapter({ name: 'animals' });
  assert.deepEqual(await servingMemory(engine, 'threaded'), before);
});

test('in-process, a job trains, evaluates and publishes on this thread, and leaves on it only the adapter', async () => {
  const here = await createEngine({ ...config, dataDir: await tempDir() }, { log: silentLog, threads: false });
  try {
    const data = await here.uploadDataset({ name: 'animals', format: 'auto' }, chunked(jsonl(EXAMPLES), 10), new AbortController().signal);
    const before = await servingMemory(here, 'in-process');
    const job = await here.submitFineTune(spec({ training: { datasetId: data.id } }));
    const events = await watchAll(here, job.id);
    assert.deepEqual(events.map((e) => e.type), ['queued', 'started', 'progress', 'progress', 'evaluation', 'progress', 'progress', 'evaluation', 'succeeded']);
    const chunks = await collect(here, genParams('Q: cat? A:', { sampling: greedy(6), adapter: { name: 'animals' } }));
    assert.equal(summary(chunks).last.finish!.adapter, 'animals@1');
    await here.unloadAdapter({ name: 'animals' });
    assert.deepEqual(await servingMemory(here, 'in-process'), before);
  } finally {
    await here.drain(0);
  }
});

test('the event log replays from any sequence after the job ended', async () => {
  const all = await watchAll(engine, trained.id);
  const tail = await watchAll(engine, trained.id, 5);
  assert.deepEqual(tail, all.slice(5));
  await assert.rejects(async () => watchAll(engine, 'ft-unknown'), rejectsWith('NOT_FOUND', /`job_id` "ft-unknown"/));
});

test('jobs run one at a time: the next one waits queued; cancel works queued and running', async () => {
  const first = await engine.submitFineTune(spec({ adapter: 'long', hyperparameters: { maxSteps: 500, batchSize: 2, maxSeqLen: 32 } }));
  const second = await engine.submitFineTune(spec({ adapter: 'later' }));
  const queuedEvent = (await engine.watchJob(second.id, 0, AbortSignal.timeout(1000))[Symbol.asyncIterator]().next()).value;
  assert.ok(queuedEvent?.type === 'queued' && queuedEvent.position === 1);
  await assert.rejects(engine.deleteDataset(dataset.id), rejectsWith('FAILED_PRECONDITION', /used by fine-tune job/));
  // Wait until the first one trains.
  for (let i = 0; i < 3000 && (await engine.getJob(first.id)).step < 2; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal((await engine.getJob(first.id)).state, 'running');
  assert.equal((await engine.getJob(second.id)).state, 'queued');
  // Training runs in-process but yields between steps: Generate is served meanwhile.
  const served = summary(await collect(engine, genParams('hi', { sampling: greedy(4) })));
  assert.ok(served.last.finish);
  assert.equal((await engine.getJob(first.id)).state, 'running');

  assert.equal((await engine.cancelJob(second.id)).state, 'cancelled');
  const cancelled = await engine.cancelJob(first.id);
  assert.equal(cancelled.state, 'cancelled');
  assert.ok(cancelled.step >= 2 && cancelled.step < 500);
  assert.deepEqual((await watchAll(engine, second.id)).map((e) => e.type), ['queued', 'cancelled']);
  assert.equal((await watchAll(engine, first.id)).at(-1)!.type, 'cancelled');
  await assert.rejects(engine.cancelJob(first.id), rejectsWith('FAILED_PRECONDITION', /already cancelled/));
  assert.deepEqual((await engine.listJobs({ limit: 10 })).map((j) => j.id), [second.id, first.id, trained.id]);
  assert.deepEqual((await engine.listJobs({ limit: 10, state: 'cancelled', adapter: 'long' })).map((j) => j.id), [first.id]);
  // No adapter came of them.
  assert.deepEqual((await engine.listAdapters()).map((a) => a.name), ['animals']);
});

test('a job with bad inline examples fails naming the example; a wrong base model is refused', async () => {
  await assert.rejects(engine.submitFineTune(spec({ baseModel: 'gpt2' })), rejectsWith('FAILED_PRECONDITION', /`base_model` "gpt2"/));
  await assert.rejects(engine.submitFineTune(spec({ training: { datasetId: 'ds-missing' } })), rejectsWith('NOT_FOUND', /`dataset_id` "ds-missing"/));
  await assert.rejects(engine.submitFineTune(spec({ hyperparameters: { earlyStoppingPatience: 2 } })), rejectsWith('INVALID_ARGUMENT', /`early_stopping_patience` 2 needs validation data/));
  await assert.rejects(
    engine.submitFineTune(spec({ method: { kind: 'lora', targetModules: ['q_proj'] } })),
    rejectsWith('INVALID_ARGUMENT', /`target_modules\[0\]` must be one of c_attn, c_proj, attn.c_proj, c_fc, mlp.c_proj, got "q_proj"/),
  );
  const job = await engine.submitFineTune(spec({ training: { examples: [{ prompt: 'a', completion: 'b' }, { prompt: 'c' } as never] } }));
  const events = await watchAll(engine, job.id);
  const last = events.at(-1)!;
  assert.ok(last.type === 'failed');
  assert.match(last.reason, /examples\[1\]: missing `completion`/);
});

test('evaluate scores the base model and adapters with token and generation metrics', async () => {
  const result = await engine.evaluate(
    {
      requestId: 'eval',
      data: { datasetId: dataset.id },
      includeBaseModel: true,
      adapters: [{ name: 'animals' }],
      metrics: ['loss', 'perplexity', 'tokenAccuracy', 'bleu', 'chrf', 'rougeL', 'exactMatch'],
      generation: greedy(6),
      maxExamples: 4,
      includeExamples: true,
    },
    new AbortController().signal,
  );
  assert.equal(result.numExamples, 4);
  assert.ok(result.numTokens > 0);
  assert.deepEqual(result.results.map((r) => r.adapter), ['', 'animals@1']);
  for (const r of result.results) {
    assert.deepEqual(Object.keys(r.metrics).sort(), ['bleu', 'chrf', 'exactMatch', 'loss', 'perplexity', 'rougeL', 'tokenAccuracy']);
    assert.ok(Math.abs(r.metrics.perplexity! - Math.exp(r.metrics.loss!)) < 1e-6 * r.metrics.perplexity!);
    assert.equal(r.examples.length, 4);
    assert.ok(r.examples.every((e, i) => e.index === i && e.metrics.loss !== undefined && e.metrics.bleu !== undefined && e.metrics.chrf !== undefined));
    assert.ok(r.metrics.chrf! >= 0 && r.metrics.chrf! <= 100);
  }
  // Fine-tuned on this very data: lower loss than the base model.
  assert.ok(result.results[1].metrics.loss! < result.results[0].metrics.loss!);
  await assert.rejects(
    engine.evaluate({ requestId: 'e', data: { datasetId: dataset.id }, includeBaseModel: false, adapters: [{ name: 'nope' }], metrics: ['loss'], generation: greedy(4), includeExamples: false }, new AbortController().signal),
    rejectsWith('NOT_FOUND', /`adapters\[0\]` "nope"/),
  );
});

test('after a restart datasets, adapters and jobs are all there; a job cut by shutdown resumes from its checkpoint', async () => {
  const cut = await engine.submitFineTune(spec({ adapter: 'cut', hyperparameters: { maxSteps: 500, batchSize: 2, maxSeqLen: 32 } }));
  const waiting = await engine.submitFineTune(spec({ hyperparameters: { maxSteps: 1, batchSize: 2, maxSeqLen: 32 } }));
  for (let i = 0; i < 3000 && (await engine.getJob(cut.id)).step < 1; i++) await new Promise((r) => setTimeout(r, 10));
  const datasets = await engine.listDatasets();
  const jobs = await engine.listJobs({ limit: 100 });
  // Within the grace period the running job saves a checkpoint at its next step boundary, then stops.
  await engine.drain(60_000);

  engine = await createEngine(config, { log: silentLog });
  assert.deepEqual(await engine.listDatasets(), datasets);
  const adapters = await engine.listAdapters();
  assert.deepEqual(adapters.map((a) => [a.name, a.latestVersion, a.versions[0].residency]), [['animals', 1, 'stored']]);
  const relisted = await engine.listJobs({ limit: 100 });
  assert.deepEqual(relisted.map((j) => j.id), jobs.map((j) => j.id));
  // The drain checkpointed it; it runs again first, from its checkpoint.
  assert.equal((await engine.getJob(cut.id)).state, 'running');
  let resumed: JobEvent | undefined;
  for await (const e of engine.watchJob(cut.id, 0, new AbortController().signal)) {
    if (e.type === 'started' && e.resumedFromStep !== undefined) resumed = e;
    if (resumed && e.type === 'progress') break;
  }
  assert.ok(resumed?.type === 'started' && resumed.resumedFromStep! >= 1, JSON.stringify(resumed));
  assert.equal((await engine.cancelJob(cut.id)).state, 'cancelled');
  assert.equal((await engine.getJob(trained.id)).state, 'succeeded');
  // The adapter loads from disk and generates what it generated before the restart.
  const chunks = await collect(engine, genParams('Q: cat? A:', { sampling: greedy(6), adapter: { name: 'animals', version: 1 } }));
  assert.deepEqual(summary(chunks).ids, adapterOutput);
  // The job still queued at shutdown runs now, and publishes the name's next version.
  const events = await watchAll(engine, waiting.id);
  assert.deepEqual(events.map((e) => e.type), ['queued', 'started', 'progress', 'succeeded']);
  const last = events.at(-1)!;
  assert.ok(last.type === 'succeeded' && last.version === 2);
  await engine.deleteAdapter({ name: 'animals', version: 1 });
  assert.deepEqual((await engine.listAdapters())[0].versions.map((v) => v.version), [2]);
  await engine.deleteDataset(dataset.id);
  assert.deepEqual(await engine.listDatasets(), []);
});
