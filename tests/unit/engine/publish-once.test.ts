/**
 * A job publishes at most one adapter version (issue 18): a process killed
 * after it stored a job's adapter but before it logged `succeeded` leaves a
 * running job whose version is in the store; the next holder of the job
 * does not train it again and publishes nothing new: it logs `succeeded`
 * with the stored version (and the metrics stored with it).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createEngine } from '../../../src/engine/create-engine.js';
import { chunked, jsonl, silentLog, tempDir, testConfig, tinyModelWithTokenizer, watchAll } from './engine-fixture.js';

let model: string;
let dataDir: string;
before(async () => {
  model = await tinyModelWithTokenizer();
  dataDir = await tempDir('gentune-publish-once-');
});
after(async () => {
  for (const d of [model, dataDir]) await rm(d, { recursive: true, force: true });
});

test('a job whose adapter is stored but whose `succeeded` was never logged succeeds with that version on resume, training nothing and publishing nothing new', async () => {
  const config = await testConfig(model, dataDir, { maxBatchSize: 4 });
  const first = await createEngine(config, { log: silentLog, threads: false });
  let jobId: string;
  let succeeded;
  try {
    const examples = [{ prompt: 'Q: cat? A:', completion: ' meow' }, { prompt: 'Q: dog? A:', completion: ' woof' }];
    const dataset = await first.uploadDataset({ name: 'animals', format: 'auto' }, chunked(jsonl(examples), 64), new AbortController().signal);
    jobId = (await first.submitFineTune({
      baseModel: '', adapter: 'once', training: { datasetId: dataset.id },
      method: { kind: 'lora', r: 2, loraAlpha: 4, loraDropout: 0, targetModules: [] },
      hyperparameters: { maxSteps: 3, batchSize: 1, learningRate: 1e-2, maxSeqLen: 32, seed: 1 },
    })).id;
    const events = await watchAll(first, jobId);
    succeeded = events.at(-1);
    assert.ok(succeeded?.type === 'succeeded' && succeeded.version === 1);
  } finally {
    await first.drain(0);
  }
  // The kill: the log ends before `succeeded` (the adapter folder is stored, whole).
  const logFile = join(dataDir, 'jobs', jobId, 'events.jsonl');
  const lines = (await readFile(logFile, 'utf8')).trimEnd().split('\n');
  await writeFile(logFile, lines.slice(0, -1).join('\n') + '\n');

  const second = await createEngine(config, { log: silentLog, threads: false });
  try {
    const events = await watchAll(second, jobId);
    assert.deepEqual(events.map((e) => e.sequence), events.map((_, i) => i));
    const last = events.at(-1);
    assert.ok(last?.type === 'succeeded' && last.version === 1, JSON.stringify(last));
    assert.deepEqual(last.metrics, JSON.parse(JSON.stringify(succeeded.metrics)), 'the metrics stored with the version (as the log stores them)');
    assert.equal(events.filter((e) => e.type === 'started').length, 1, 'not trained again');
    const adapters = await second.listAdapters();
    assert.deepEqual(adapters.map((a) => [a.name, a.versions.map((v) => v.version)]), [['once', [1]]]);
  } finally {
    await second.drain(0);
  }
});
