import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Dataset } from '../../src/gen/gentune/v1/datasets.js';
import { JobState, type FineTuneEvent } from '../../src/gen/gentune/v1/fine_tune.js';
import { FIXTURE_NAME, longGeneration } from './helpers/fixture-model.js';
import { collect, eventually, startHarness } from './helpers/harness.js';

const JSONL = ['{"prompt":"Q: 1+1?","completion":" 2"}', '{"prompt":"Q: 2+2?","completion":" 4"}', '{"prompt":"Q: 3+3?","completion":" 6"}'].join('\n') + '\n';

let dataDir: string;
before(() => {
  dataDir = mkdtempSync(join(tmpdir(), 'gentune-restart-'));
});
after(() => rmSync(dataDir, { recursive: true, force: true }));

test('a new server on the same data dir lists the datasets, adapters and jobs of the old one, and serves the adapter', async () => {
  // First server: a dataset, an adapter trained on it, and a job still running when it stops.
  const first = await startHarness({ dataDir });
  let dataset: Dataset;
  let finished: FineTuneEvent[];
  let output: number[];
  let interruptedId = '';
  try {
    dataset = await first.client.uploadDataset({ name: 'qa' }, Buffer.from(JSONL));
    finished = await collect(
      first.client.fineTune({ adapter: 'kept', datasetId: dataset.id, method: { $case: 'lora', value: { r: 4 } }, hyperparameters: { maxSteps: 3, learningRate: 1e-2, seed: '1' } }),
    );
    assert.equal(finished.at(-1)?.event?.$case, 'succeeded');
    output = (await first.client.generateText({ ...longGeneration(16), adapter: 'kept' })).tokenIds;

    const seen: string[] = [];
    const running = (async () => {
      for await (const e of first.client.fineTune({ adapter: 'cut', datasetId: dataset.id, hyperparameters: { maxSteps: 100_000 } })) {
        seen.push(e.event!.$case);
        interruptedId = e.jobId;
      }
    })().catch(() => undefined); // the stream breaks when the server stops
    await eventually(() => seen.includes('progress'), 10_000, 'the second job to run');
    await first.close();
    await running;
  } finally {
    await first.close();
  }

  // Second server, same data dir.
  const second = await startHarness({ dataDir });
  try {
    const datasets = await second.client.listDatasets();
    assert.deepEqual(datasets, [dataset]);

    const adapters = await second.client.listAdapters();
    assert.deepEqual(adapters.map((a) => [a.name, a.latestVersion]), [['kept', 1]]);
    const v1 = adapters[0]!.versions[0]!;
    assert.equal(v1.jobId, finished[0]!.jobId);
    assert.equal(v1.r, 4);
    assert.equal(v1.baseModel, FIXTURE_NAME);
    const again = await second.client.generateText({ ...longGeneration(16), adapter: 'kept' });
    assert.equal(again.adapter, 'kept@1');
    assert.deepEqual(again.tokenIds, output, 'the reloaded adapter generates exactly what it did before');

    const jobs = await second.client.listFineTuneJobs();
    assert.deepEqual(jobs.map((j) => j.id), [interruptedId, finished[0]!.jobId]);
    const done = await second.client.getFineTuneJob(finished[0]!.jobId);
    assert.equal(done.state, JobState.JOB_STATE_SUCCEEDED);
    assert.equal(done.adapterVersion, 1);
    assert.equal(done.request?.datasetId, dataset.id);
    assert.deepEqual(await collect(second.client.watchFineTune(done.id)), finished, 'the event log replays as it was streamed');

    // A job cut by the shutdown saved a checkpoint as the engine drained; it resumes from there: running, started anew, progress going on.
    const cut = await second.client.getFineTuneJob(interruptedId);
    assert.equal(cut.state, JobState.JOB_STATE_RUNNING);
    const replay: FineTuneEvent[] = [];
    for await (const e of second.client.watchFineTune(interruptedId)) {
      replay.push(e);
      if (replay.filter((x) => x.event?.$case === 'started').length === 2 && e.event?.$case === 'progress') break;
    }
    const cases = replay.map((e) => e.event!.$case);
    assert.equal(cases.filter((c) => c === 'started').length, 2, cases.join(' '));
    const checkpoint = replay.at(-3)?.event;
    assert.deepEqual(cases.slice(-3), ['checkpoint', 'started', 'progress'], cases.join(' '));
    const resumedAt = replay.at(-1)?.event;
    assert.ok(checkpoint?.$case === 'checkpoint' && resumedAt?.$case === 'progress' && resumedAt.value.step === checkpoint.value.step + 1);
    assert.equal((await second.client.cancelFineTune(interruptedId)).state, JobState.JOB_STATE_CANCELLED);

    // The restored state is live, not a read-only copy: train a second version on the old dataset.
    const next = (await collect(second.client.fineTune({ adapter: 'kept', datasetId: dataset.id, hyperparameters: { maxSteps: 1 } }))).at(-1)?.event;
    assert.ok(next?.$case === 'succeeded' && next.value.version === 2, JSON.stringify(next));
    assert.equal((await second.client.listAdapters())[0]!.latestVersion, 2);
  } finally {
    await second.close();
  }
});
