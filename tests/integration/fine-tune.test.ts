import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { status as Code } from '@grpc/grpc-js';
import { JobState, LrScheduler, type FineTuneEvent } from '../../src/gen/gentune/v1/fine_tune.js';
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
    const progress = events.flatMap((e) => (e.event?.$case === 'progress' ? [e.event.value] : []));
    assert.ok(progress.length >= 1);
    assert.ok(progress.every((p) => p.step >= 1 && p.step <= p.totalSteps && Number.isFinite(p.loss)));
    const done = events.at(-1)!.event;
    assert.equal(done?.$case, 'succeeded');
    if (done?.$case !== 'succeeded') return;
    assert.equal(done.value.adapter, 'ft-stream');
    assert.ok(done.value.version >= 1);

    const job = await h.client.getFineTuneJob(jobId);
    assert.equal(job.state, JobState.JOB_STATE_SUCCEEDED);
    assert.equal(job.request?.adapter, 'ft-stream');
    assert.equal(job.request?.method?.$case, 'lora');
    assert.equal(job.request?.hyperparameters?.seed, '1');
    assert.equal(job.request?.examples.length, EXAMPLES.length);
    assert.equal(job.adapterVersion, done.value.version);

    const adapters = await h.client.listAdapters();
    assert.ok(adapters.some((a) => a.name === 'ft-stream' && a.latestVersion === done.value.version));
    const out = await h.client.generateText({ prompt: 'x', adapter: 'ft-stream', sampling: { maxNewTokens: 2 } });
    assert.equal(out.adapter, `ft-stream@${done.value.version}`);
  });

  test('detaching from FineTune keeps the job; WatchFineTune replays from a sequence', async () => {
    let first: FineTuneEvent | undefined;
    for await (const e of h.client.fineTune({ adapter: 'ft-detach', examples: EXAMPLES, hyperparameters: { maxSteps: 2 } })) {
      first = e;
      break; // detach
    }
    assert.equal(first?.event?.$case, 'queued');
    const all = await collect(h.client.watchFineTune(first!.jobId));
    assert.equal(all[0]!.event?.$case, 'queued');
    assert.equal(all.at(-1)!.event?.$case, 'succeeded');
    const tail = await collect(h.client.watchFineTune(first!.jobId, 2));
    assert.deepEqual(tail.map((e) => e.sequence), all.slice(2).map((e) => e.sequence));
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
    await rejectsWith(h.client.cancelFineTune(jobId), Code.FAILED_PRECONDITION, /already/);
  });

  test('cancelling a watch aborts the engine watch but not the job', async () => {
    const before = h.engine.watchSignals.length;
    for await (const _ of h.client.fineTune({ adapter: 'ft-watch', examples: EXAMPLES, hyperparameters: { maxSteps: 3 } })) break;
    await eventually(() => h.engine.watchSignals[before]?.aborted === true, 2000, 'the watch abort');
  });

  test('unknown jobs and datasets are NOT_FOUND', async () => {
    await rejectsWith(h.client.getFineTuneJob('ft-nope'), Code.NOT_FOUND, /ft-nope/);
    await rejectsWith(collect(h.client.watchFineTune('ft-nope')), Code.NOT_FOUND);
    await rejectsWith(h.client.cancelFineTune('ft-nope'), Code.NOT_FOUND);
    await rejectsWith(collect(h.client.fineTune({ adapter: 'a', datasetId: 'ds-nope' })), Code.NOT_FOUND, /ds-nope/);
  });

  const ok = { adapter: 'bad', examples: EXAMPLES };
  const bad: [string, Record<string, unknown>, RegExp][] = [
    ['no adapter', { examples: EXAMPLES }, /^`adapter` is required/],
    ['adapter path', { ...ok, adapter: 'a/b' }, /`adapter` must not contain/],
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
    ['batch over limit', { ...ok, hyperparameters: { batchSize: 9 } }, /`batch_size` must be >= 1 and <= 8, got 9/],
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
    await rejectsWith(collect(h.client.watchFineTune('a b')), Code.INVALID_ARGUMENT, /`job_id` must be 1\.\.128 characters/);
    await rejectsWith(h.client.cancelFineTune(''), Code.INVALID_ARGUMENT, /`job_id`/);
    await rejectsWith(h.client.listFineTuneJobs({ limit: 0 }), Code.INVALID_ARGUMENT, /`limit` must be >= 1 and <= 1000, got 0/);
    await rejectsWith(h.client.listFineTuneJobs({ state: 42 as JobState }), Code.INVALID_ARGUMENT, /`state` must be one of JOB_STATE_QUEUED.*got 42/);
    await rejectsWith(h.client.listFineTuneJobs({ adapter: '..' }), Code.INVALID_ARGUMENT, /`adapter` must not contain/);
  });
});
