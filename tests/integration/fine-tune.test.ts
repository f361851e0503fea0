import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { status as Code } from '@grpc/grpc-js';
import { JobState, LrScheduler, type FineTuneEvent } from '../../src/gen/gentune/v1/fine_tune.js';
import { FIXTURE_NAME } from './helpers/fixture-model.js';
import { collect, eventually, rejectsWith, startHarness, type Harness } from './helpers/harness.js';

const EXAMPLES = [
  { prompt: 'Q: 2+2?', completion: ' 4' },
  { messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }] },
  { text: 'plain text example' },
];

describe('FineTune and jobs', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ limits: { maxBatchSize: 8 } });
  });
  after(() => h.close());

  test('FineTune streams queued -> started -> progress -> ... -> succeeded, and publishes the adapter', async () => {
    const events = await collect(
      h.client.fineTune({
        baseModel: FIXTURE_NAME,
        adapter: 'ft-stream',
        examples: EXAMPLES,
        method: { $case: 'lora', value: { r: 4, loraAlpha: 8, targetModules: ['c_attn'] } },
        hyperparameters: { maxSteps: 3, batchSize: 2, learningRate: 1e-3, lrScheduler: LrScheduler.LR_SCHEDULER_LINEAR, seed: '1' },
      }),
    );
    const kinds = events.map((e) => e.event?.$case);
    assert.equal(kinds[0], 'queued');
    assert.equal(kinds.at(-1), 'succeeded');
    assert.ok(kinds.includes('started') && kinds.includes('progress'));
    assert.deepEqual(events.map((e) => e.sequence), events.map((_, i) => i));
    const jobId = events[0]!.jobId;
    assert.ok(events.every((e) => e.jobId === jobId && e.time instanceof Date));
    const started = events.find((e) => e.event?.$case === 'started')?.event;
    assert.ok(started?.$case === 'started' && started.value.totalSteps === 3 && started.value.numTrainExamples === EXAMPLES.length);
    assert.ok(started.value.trainableParameters > 0);
    const progress = events.flatMap((e) => (e.event?.$case === 'progress' ? [e.event.value] : []));
    assert.deepEqual(progress.map((p) => p.step), [1, 2, 3]);
    assert.ok(progress.every((p) => p.totalSteps === 3 && Number.isFinite(p.loss) && p.loss > 0 && p.learningRate > 0 && p.tokensPerSecond > 0));
    const done = events.at(-1)!.event;
    assert.equal(done?.$case, 'succeeded');
    if (done?.$case !== 'succeeded') return;
    assert.equal(done.value.adapter, 'ft-stream');
    assert.ok(done.value.version >= 1);
    assert.equal(done.value.metrics?.steps, 3);
    assert.ok(Number.isFinite(done.value.metrics?.trainLoss) && Number(done.value.metrics?.tokens) > 0);

    const job = await h.client.getFineTuneJob(jobId);
    assert.equal(job.state, JobState.JOB_STATE_SUCCEEDED);
    assert.equal(job.request?.adapter, 'ft-stream');
    assert.equal(job.request?.baseModel, FIXTURE_NAME);
    assert.equal(job.request?.method?.$case, 'lora');
    assert.equal(job.request?.hyperparameters?.seed, '1');
    assert.equal(job.request?.examples.length, EXAMPLES.length);
    assert.equal(job.adapterVersion, done.value.version);

    const adapters = await h.client.listAdapters();
    assert.ok(adapters.some((a) => a.name === 'ft-stream' && a.latestVersion === done.value.version));
    const out = await h.client.generateText({ prompt: 'x', adapter: 'ft-stream', sampling: { maxNewTokens: 2 } });
    assert.equal(out.adapter, `ft-stream@${done.value.version}`);
  });

  test('a client that disconnects mid-training leaves the job running; WatchFineTune follows it to the end and replays from a sequence', async () => {
    const seen: FineTuneEvent[] = [];
    for await (const e of h.client.fineTune({ adapter: 'ft-detach', examples: EXAMPLES, hyperparameters: { maxSteps: 4 } })) {
      seen.push(e);
      if (e.event?.$case === 'progress') break; // disconnect while the job runs
    }
    const jobId = seen[0]!.jobId;
    assert.deepEqual(seen.map((e) => e.event?.$case), ['queued', 'started', 'progress']);
    const all = await collect(h.client.watchFineTune(jobId));
    assert.deepEqual(all.slice(0, 3), seen, 'the replay starts with the events the first client saw');
    assert.equal(all.at(-1)!.event?.$case, 'succeeded');
    assert.deepEqual(all.map((e) => e.sequence), all.map((_, i) => i));
    const job = await h.client.getFineTuneJob(jobId);
    assert.equal(job.state, JobState.JOB_STATE_SUCCEEDED);
    assert.equal(job.step, 4);
    const tail = await collect(h.client.watchFineTune(jobId, 2));
    assert.deepEqual(tail, all.slice(2));
    assert.deepEqual(await collect(h.client.watchFineTune(jobId, all.length)), [], 'nothing after the terminal event');
  });

  test('ListFineTuneJobs filters by state and adapter, newest first', async () => {
    const all = await h.client.listFineTuneJobs();
    assert.ok(all.length >= 2);
    const mine = await h.client.listFineTuneJobs({ adapter: 'ft-detach' });
    assert.ok(mine.length >= 1 && mine.every((j) => j.request?.adapter === 'ft-detach'));
    const succeeded = await h.client.listFineTuneJobs({ state: JobState.JOB_STATE_SUCCEEDED, limit: 1 });
    assert.equal(succeeded.length, 1);
  });

  test('CancelFineTune cancels a running job; its watchers see `cancelled`; cancelling again is FAILED_PRECONDITION', async () => {
    const events = h.client.fineTune({ adapter: 'ft-cancel', examples: EXAMPLES, hyperparameters: { maxSteps: 100_000 } });
    const seen: string[] = [];
    let jobId = '';
    for await (const e of events) {
      seen.push(e.event!.$case);
      jobId = e.jobId;
      if (e.event?.$case === 'progress' && !seen.slice(0, -1).includes('progress')) {
        const job = await h.client.cancelFineTune(jobId);
        assert.equal(job.state, JobState.JOB_STATE_CANCELLED);
      }
    }
    assert.equal(seen.at(-1), 'cancelled');
    assert.equal((await h.client.getFineTuneJob(jobId)).state, JobState.JOB_STATE_CANCELLED);
    await rejectsWith(h.client.cancelFineTune(jobId), Code.FAILED_PRECONDITION, /already/);
    assert.ok(!(await h.client.listAdapters()).some((a) => a.name === 'ft-cancel'), 'a cancelled job publishes nothing');
  });

  test('jobs run one at a time: a second job waits QUEUED, and cancelled there it never starts', async () => {
    const running: FineTuneEvent[] = [];
    const long = (async () => {
      for await (const e of h.client.fineTune({ adapter: 'ft-long', examples: EXAMPLES, hyperparameters: { maxSteps: 100_000 } })) running.push(e);
    })();
    await eventually(() => running.some((e) => e.event?.$case === 'progress'), 10_000, 'the first job to run');
    let queued: FineTuneEvent | undefined;
    for await (const e of h.client.fineTune({ adapter: 'ft-queued', examples: EXAMPLES, hyperparameters: { maxSteps: 2 } })) {
      queued = e;
      break;
    }
    assert.ok(queued?.event?.$case === 'queued' && queued.event.value.position === 1, JSON.stringify(queued));
    assert.equal((await h.client.getFineTuneJob(queued.jobId)).state, JobState.JOB_STATE_QUEUED);
    assert.deepEqual((await h.client.listFineTuneJobs({ state: JobState.JOB_STATE_RUNNING })).map((j) => j.id), [running[0]!.jobId]);

    assert.equal((await h.client.cancelFineTune(queued.jobId)).state, JobState.JOB_STATE_CANCELLED);
    assert.deepEqual((await collect(h.client.watchFineTune(queued.jobId))).map((e) => e.event?.$case), ['queued', 'cancelled']);
    await h.client.cancelFineTune(running[0]!.jobId);
    await long;
    assert.equal(running.at(-1)?.event?.$case, 'cancelled');
  });

  test('cancelling a watch aborts the engine watch but not the job', async () => {
    const before = h.engine.watchSignals.length;
    let jobId = '';
    for await (const e of h.client.fineTune({ adapter: 'ft-watch', examples: EXAMPLES, hyperparameters: { maxSteps: 3 } })) {
      jobId = e.jobId;
      break;
    }
    await eventually(() => h.engine.watchSignals[before]?.aborted === true, 2000, 'the watch abort');
    assert.equal((await collect(h.client.watchFineTune(jobId))).at(-1)?.event?.$case, 'succeeded');
  });

  test('unknown jobs and datasets are NOT_FOUND', async () => {
    await rejectsWith(h.client.getFineTuneJob('ft-nope'), Code.NOT_FOUND, /ft-nope/);
    await rejectsWith(collect(h.client.watchFineTune('ft-nope')), Code.NOT_FOUND);
    await rejectsWith(h.client.cancelFineTune('ft-nope'), Code.NOT_FOUND);
    await rejectsWith(collect(h.client.fineTune({ adapter: 'a', datasetId: 'ds-nope' })), Code.NOT_FOUND, /^`dataset_id` "ds-nope"/);
    await rejectsWith(collect(h.client.fineTune({ adapter: 'a', examples: EXAMPLES, validationDatasetId: 'ds-nope' })), Code.NOT_FOUND, /^`validation_dataset_id` "ds-nope"/);
  });

  let stored: { jobs: string[]; adapters: string[] };
  test('(before the bad input below: what is stored)', async () => {
    stored = await snapshot();
  });

  const ok = { adapter: 'bad', examples: EXAMPLES };
  const bad: [string, Record<string, unknown>, RegExp][] = [
    ['no adapter', { examples: EXAMPLES }, /^`adapter` is required/],
    ['adapter path', { ...ok, adapter: 'a/b' }, /`adapter` must not contain/],
    ['adapter backslash', { ...ok, adapter: 'a\\b' }, /`adapter` must not contain '\/', '\\' or '\.\.', got "a\\\\b"/],
    ['adapter dot-dot', { ...ok, adapter: '..' }, /`adapter` must not contain/],
    ['no data', { adapter: 'a' }, /exactly one of `dataset_id` and `examples` must be set, got none/],
    ['both data', { ...ok, datasetId: 'x' }, /got `dataset_id` and `examples`/],
    ['dataset id path', { adapter: 'a', datasetId: '../etc' }, /`dataset_id` must not contain/],
    ['example with two shapes', { ...ok, examples: [{ prompt: 'p', completion: 'c', text: 't' }] }, /exactly one of `examples\[0\]\.prompt`, `examples\[0\]\.messages`, `examples\[0\]\.text` must be set/],
    ['example without completion', { ...ok, examples: [{ prompt: 'p' }] }, /`examples\[0\]\.completion` is required/],
    ['bad role', { ...ok, examples: [{ messages: [{ role: 'bot', content: 'x' }] }] }, /`examples\[0\]\.messages\[0\]\.role` must be one of system, user, assistant, got "bot"/],
    ['no assistant turn', { ...ok, examples: [{ messages: [{ role: 'user', content: 'x' }] }] }, /`examples\[0\]\.messages` must include a message with role "assistant"/],
    ['r 0', { ...ok, method: { $case: 'lora', value: { r: 0 } } }, /`r` must be >= 1 and <= 256, got 0/],
    ['lora_alpha 0', { ...ok, method: { $case: 'lora', value: { loraAlpha: 0 } } }, /`lora_alpha` must be > 0/],
    ['lora_dropout 1', { ...ok, method: { $case: 'lora', value: { loraDropout: 1 } } }, /`lora_dropout` must be >= 0 and < 1, got 1/],
    ['target module', { ...ok, method: { $case: 'lora', value: { targetModules: ['wte'] } } }, /`target_modules\[0\]` must be one of .*got "wte"/],
    ['duplicate target', { ...ok, method: { $case: 'lora', value: { targetModules: ['c_attn', 'c_attn'] } } }, /`target_modules` must not contain duplicates/],
    ['num_layers 0', { ...ok, method: { $case: 'lastLayers', value: { numLayers: 0 } } }, /`num_layers` must be >= 1 and <= \d+, got 0/],
    ['num_layers too many', { ...ok, method: { $case: 'lastLayers', value: { numLayers: 99 } } }, /`num_layers` must be >= 1 and <= \d+, got 99/],
    ['epochs 0', { ...ok, hyperparameters: { epochs: 0 } }, /`epochs` must be >= 1 and <= 1000, got 0/],
    ['max_steps 0', { ...ok, hyperparameters: { maxSteps: 0 } }, /`max_steps` must be >= 1/],
    ['batch over limit', { ...ok, hyperparameters: { batchSize: 9 } }, /`batch_size` must be <= limits\.max_batch_size \(--max-batch-size\) 8, got 9/],
    ['grad accumulation 0', { ...ok, hyperparameters: { gradientAccumulationSteps: 0 } }, /`gradient_accumulation_steps` must be >= 1/],
    ['learning rate 0', { ...ok, hyperparameters: { learningRate: 0 } }, /`learning_rate` must be > 0 and <= 1, got 0/],
    ['warmup beyond max_steps', { ...ok, hyperparameters: { maxSteps: 5, warmupSteps: 6 } }, /`warmup_steps` must be >= 0 and <= 5, got 6/],
    ['lr scheduler unknown', { ...ok, hyperparameters: { lrScheduler: 9 } }, /`lr_scheduler` must be one of LR_SCHEDULER_COSINE.*got 9/],
    ['weight decay 2', { ...ok, hyperparameters: { weightDecay: 2 } }, /`weight_decay` must be >= 0 and <= 1, got 2/],
    ['max_seq_len 4', { ...ok, hyperparameters: { maxSeqLen: 4 } }, /`max_seq_len` must be >= 8/],
    ['max_seq_len past context', { ...ok, hyperparameters: { maxSeqLen: 100_000 } }, /`max_seq_len` must be >= 8 and <= \d+, got 100000/],
    ['validation split 0.9', { ...ok, hyperparameters: { validationSplit: 0.9 } }, /`validation_split` must be >= 0 and <= 0\.5/],
    ['patience without validation', { ...ok, hyperparameters: { earlyStoppingPatience: 2 } }, /`early_stopping_patience` requires validation data/],
    ['seed above 2^53', { ...ok, hyperparameters: { seed: '9007199254740993' } }, /`seed` must be an integer in 0\.\.9007199254740991, got "9007199254740993"/],
    ['max_grad_norm negative', { ...ok, hyperparameters: { maxGradNorm: -1 } }, /`max_grad_norm` must be >= 0/],
    ['base model path', { ...ok, baseModel: '../m' }, /`base_model` must not contain/],
  ];
  for (const [name, req, message] of bad) {
    test(`FineTune INVALID_ARGUMENT: ${name}`, async () => {
      await rejectsWith(collect(h.client.fineTune(req)), Code.INVALID_ARGUMENT, message);
    });
  }

  test('a wrong base model is FAILED_PRECONDITION', async () => {
    await rejectsWith(collect(h.client.fineTune({ ...ok, baseModel: 'gpt-j' })), Code.FAILED_PRECONDITION, /base_model/);
  });

  test('job RPCs validate their ids and filters', async () => {
    await rejectsWith(h.client.getFineTuneJob(''), Code.INVALID_ARGUMENT, /^`job_id` is required/);
    await rejectsWith(h.client.getFineTuneJob('../x'), Code.INVALID_ARGUMENT, /`job_id` must not contain/);
    await rejectsWith(collect(h.client.watchFineTune('a b')), Code.INVALID_ARGUMENT, /`job_id` must be 1\.\.64 characters of \[A-Za-z0-9._-\], starting with a letter or digit/);
    await rejectsWith(h.client.cancelFineTune(''), Code.INVALID_ARGUMENT, /`job_id`/);
    await rejectsWith(h.client.listFineTuneJobs({ limit: 0 }), Code.INVALID_ARGUMENT, /`limit` must be >= 1 and <= 1000, got 0/);
    await rejectsWith(h.client.listFineTuneJobs({ state: 42 as JobState }), Code.INVALID_ARGUMENT, /`state` must be one of JOB_STATE_QUEUED.*got 42/);
    await rejectsWith(h.client.listFineTuneJobs({ adapter: '..' }), Code.INVALID_ARGUMENT, /`adapter` must not contain/);
    await rejectsWith(h.client.listFineTuneJobs({ adapter: 'a\\b' }), Code.INVALID_ARGUMENT, /`adapter` must not contain/);
  });

  test('bad input stored no job and no adapter, and the server still trains and serves', async () => {
    assert.deepEqual(await snapshot(), stored);
    const events = await collect(h.client.fineTune({ adapter: 'ft-after', examples: EXAMPLES, hyperparameters: { maxSteps: 1 } }));
    assert.equal(events.at(-1)?.event?.$case, 'succeeded');
    assert.equal((await h.client.generateText({ prompt: 'x', adapter: 'ft-after', sampling: { maxNewTokens: 2 } })).adapter, 'ft-after@1');
  });

  async function snapshot() {
    const jobs = (await h.client.listFineTuneJobs({ limit: 1000 })).map((j) => `${j.id}:${j.state}`);
    const adapters = (await h.client.listAdapters()).map((a) => `${a.name}@${a.versions.map((v) => v.version).join(',')}`);
    return { jobs, adapters };
  }
});
