/**
 * Fine-tune jobs across restarts: a drained engine checkpoints its running
 * job, the next engine on the same data directory resumes it, and the
 * adapter it publishes is the one an uninterrupted run publishes (to 1e-5),
 * on this thread and in a job worker alike. A checkpoint that does not read
 * is reported and the job starts over, to the same adapter.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, rm, stat, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import type { GentuneConfig } from '../../../src/engine/config.js';
import { createEngine } from '../../../src/engine/create-engine.js';
import type { Engine, FineTuneSpec, JobEvent } from '../../../src/engine/engine-api.js';
import { readSafetensors } from '../../../src/model/checkpoint/safetensors.js';
import { capturingLog } from '../../helpers/capturing-log.js';
import { chunked, jsonl, silentLog, tempDir, testConfig, tinyModelWithTokenizer, watchAll } from './engine-fixture.js';

const EXAMPLES = [
  { prompt: 'Q: cat? A:', completion: ' meow' },
  { prompt: 'Q: dog? A:', completion: ' woof' },
  { prompt: 'Q: cow? A:', completion: ' moo' },
  { prompt: 'Q: owl? A:', completion: ' hoot' },
  { prompt: 'Q: hen? A:', completion: ' cluck' },
  { prompt: 'Q: pig? A:', completion: ' oink' },
  { prompt: 'Q: bee? A:', completion: ' buzz' },
  { prompt: 'Q: duck? A:', completion: ' quack' },
];
const STEPS = 24;

let model: string;
const dirs: string[] = [];
before(async () => {
  model = await tinyModelWithTokenizer();
});
after(async () => {
  for (const d of [model, ...dirs]) await rm(d, { recursive: true, force: true });
});

/** Dropout, validation with periodic evaluation and a warmup + cosine schedule: every part of the trainer's state matters. */
const spec = (datasetId: string): FineTuneSpec => ({
  baseModel: '',
  adapter: 'animals',
  training: { datasetId },
  method: { kind: 'lora', r: 4, loraAlpha: 8, loraDropout: 0.1, targetModules: ['c_attn', 'c_fc'] },
  hyperparameters: { maxSteps: STEPS, batchSize: 2, learningRate: 1e-2, warmupSteps: 3, maxSeqLen: 32, validationSplit: 0.25, evalIntervalSteps: 5, seed: 3 },
});

async function freshConfig(): Promise<GentuneConfig> {
  const dataDir = await tempDir('gentune-resume-');
  dirs.push(dataDir);
  // Checkpoints on drain only, so the test decides where the run is cut.
  return { ...(await testConfig(model, dataDir, { maxBatchSize: 4 })), checkpointIntervalMs: 1e9 };
}

async function submit(engine: Engine): Promise<string> {
  const dataset = await engine.uploadDataset({ name: 'animals', format: 'auto' }, chunked(jsonl(EXAMPLES), 64), new AbortController().signal);
  return (await engine.submitFineTune(spec(dataset.id))).id;
}

/** The weights of `<dataDir>/adapters/animals/1`. */
async function adapterWeights(config: GentuneConfig): Promise<Map<string, Float32Array>> {
  const { tensors } = await readSafetensors(join(config.dataDir, 'adapters', 'animals', '1', 'adapter_model.safetensors'));
  return new Map([...tensors].map(([k, t]) => [k, t.data]));
}

function assertClose(actual: Map<string, Float32Array>, expected: Map<string, Float32Array>, tolerance: number): void {
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort());
  let worst = 0;
  for (const [k, a] of actual) {
    const e = expected.get(k)!;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - e[i]));
  }
  assert.ok(worst <= tolerance, `largest difference ${worst} > ${tolerance}`);
}

/** Runs the job to its end on a fresh data dir: the reference adapter. */
async function uninterrupted(threads: boolean): Promise<Map<string, Float32Array>> {
  const config = await freshConfig();
  const engine = await createEngine(config, { log: silentLog, threads });
  try {
    const events = await watchAll(engine, await submit(engine));
    assert.equal(events.at(-1)?.type, 'succeeded');
  } finally {
    await engine.drain(0);
  }
  return adapterWeights(config);
}

/** Submits the job, drains the engine once it has done `atStep` steps, and returns the config and the job id. */
async function cutByDrain(threads: boolean, atStep: number): Promise<{ config: GentuneConfig; jobId: string; checkpointStep: number }> {
  const config = await freshConfig();
  const engine = await createEngine(config, { log: silentLog, threads });
  const jobId = await submit(engine);
  for (let i = 0; i < 3000 && (await engine.getJob(jobId)).step < atStep; i++) await new Promise((r) => setTimeout(r, 5));
  await engine.drain(60_000);
  // The job is neither finished nor failed: its log ends with the checkpoint it saved at its next step boundary.
  const lines = (await readFile(join(config.dataDir, 'jobs', jobId, 'events.jsonl'), 'utf8')).trim().split('\n');
  const last = JSON.parse(lines.at(-1)!) as JobEvent;
  assert.equal(last.type, 'checkpoint', `the log ends with ${last.type}`);
  assert.ok(last.type === 'checkpoint' && last.step >= atStep && last.step < STEPS, `checkpoint at step ${JSON.stringify(last)}`);
  assert.ok((await stat(join(config.dataDir, 'jobs', jobId, 'checkpoint.safetensors'))).size > 0);
  return { config, jobId, checkpointStep: last.step };
}

for (const threads of [false, true]) {
  const where = threads ? 'in a job worker' : 'on the serving thread';

  test(`${where}: a job cut by drain resumes after the restart from its checkpoint and ends with the uninterrupted run's adapter (1e-5)`, async () => {
    const reference = await uninterrupted(threads);
    const { config, jobId, checkpointStep } = await cutByDrain(threads, 7);
    const engine = await createEngine(config, { log: silentLog, threads });
    try {
      const events = await watchAll(engine, jobId);
      const types = events.map((e) => e.type);
      assert.equal(types.at(-1), 'succeeded');
      const starts = events.filter((e) => e.type === 'started');
      assert.equal(starts.length, 2);
      assert.ok(starts[1].type === 'started' && starts[1].resumedFromStep === checkpointStep, JSON.stringify(starts[1]));
      // Progress goes on from the checkpoint: the first step after the restart is the one after it.
      const after = events.slice(events.indexOf(starts[1]) + 1).find((e) => e.type === 'progress');
      assert.ok(after?.type === 'progress' && after.step === checkpointStep + 1, JSON.stringify(after));
      const job = await engine.getJob(jobId);
      assert.equal(job.state, 'succeeded');
      assert.equal(job.step, STEPS);
      assertClose(await adapterWeights(config), reference, 1e-5);
      // The checkpoint went with the job's end.
      assert.deepEqual((await readdir(join(config.dataDir, 'jobs', jobId))).sort(), ['events.jsonl', 'spec.json']);
    } finally {
      await engine.drain(0);
    }
  });
}

test('an unreadable checkpoint (truncated) is reported, naming the file; the job starts over from step 0 and ends with the same adapter', async () => {
  const reference = await uninterrupted(false);
  const { config, jobId } = await cutByDrain(false, 4);
  const file = join(config.dataDir, 'jobs', jobId, 'checkpoint.safetensors');
  await truncate(file, (await stat(file)).size - 100);
  const { log, lines } = capturingLog();
  const engine = await createEngine(config, { log, threads: false });
  try {
    const events = await watchAll(engine, jobId);
    assert.equal(events.at(-1)?.type, 'succeeded');
    const restart = events.filter((e) => e.type === 'started').at(-1);
    assert.ok(restart?.type === 'started' && restart.resumedFromStep === undefined, 'started over');
    const warning = lines.find((l) => l.msg.startsWith('skipping an unreadable fine-tune checkpoint'));
    assert.equal(warning?.file, file);
    assertClose(await adapterWeights(config), reference, 1e-5);
  } finally {
    await engine.drain(0);
  }
});

test('a job cut by drain whose dataset is gone after the restart is failed, naming the dataset', async () => {
  const { config, jobId } = await cutByDrain(false, 2);
  const spec = JSON.parse(await readFile(join(config.dataDir, 'jobs', jobId, 'spec.json'), 'utf8')) as { spec: FineTuneSpec };
  const datasetId = (spec.spec.training as { datasetId: string }).datasetId;
  await rm(join(config.dataDir, 'datasets', datasetId), { recursive: true });
  const engine = await createEngine(config, { log: silentLog, threads: false });
  try {
    const events = await watchAll(engine, jobId);
    const last = events.at(-1);
    assert.ok(last?.type === 'failed' && last.reason === `\`dataset_id\` ${JSON.stringify(datasetId)}: no such dataset`, JSON.stringify(last));
    assert.deepEqual((await readdir(join(config.dataDir, 'jobs', jobId))).sort(), ['events.jsonl', 'spec.json']);
  } finally {
    await engine.drain(0);
  }
});
