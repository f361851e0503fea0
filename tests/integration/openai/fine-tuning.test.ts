/**
 * The OpenAI fine-tuning API with the official SDK against the real server
 * and engine (tiny random GPT-2, a few optimizer steps): a job from an
 * uploaded file runs to `succeeded`, its events (polled newest first) show
 * the metrics, its `fine_tuned_model` is served at once; cancel, pagination,
 * roles and request errors that name their field.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import OpenAI, { toFile } from 'openai';
import type { FineTuningJob } from 'openai/resources/fine-tuning/jobs/jobs';
import { FIXTURE_NAME } from '../helpers/fixture-model.js';
import { startHarness, type Harness } from '../helpers/harness.js';

const ADMIN = 'admin-token-0123456789abcdef';
const USER = 'user-token-0123456789abcdefgh';
const ROWS = [
  { messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }] },
  { messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b', weight: 0 }, { role: 'user', content: 'c' }, { role: 'assistant', content: 'd', weight: 1 }] },
  { messages: [{ role: 'user', content: '2+2?' }, { role: 'assistant', content: '4' }] },
];
/** Bounds the waits below; what ends them is the job's own status. */
const JOB_DEADLINE_MS = 120_000;
const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);

let h: Harness;
let admin: OpenAI;
let user: OpenAI;
let fileId: string;
before(async () => {
  h = await startHarness({ http: true, limits: { maxBatchSize: 8 }, security: { adminTokens: [ADMIN], userTokens: [USER] } });
  admin = new OpenAI({ baseURL: h.openaiBaseUrl, apiKey: ADMIN, maxRetries: 0 });
  user = new OpenAI({ baseURL: h.openaiBaseUrl, apiKey: USER, maxRetries: 0 });
  const text = ROWS.map((r) => JSON.stringify(r)).join('\n');
  fileId = (await admin.files.create({ file: await toFile(Buffer.from(text), 'train.jsonl'), purpose: 'fine-tune' })).id;
});
after(() => h.close());

/** Polls the job (and its events, as a client would) until it reaches a state in `until`. */
async function waitFor(id: string, until: (job: FineTuningJob) => boolean): Promise<FineTuningJob> {
  const deadline = Date.now() + JOB_DEADLINE_MS;
  for (;;) {
    const job = await user.fineTuning.jobs.retrieve(id);
    if (until(job)) return job;
    await user.fineTuning.jobs.listEvents(id, { limit: 5 });
    if (Date.now() > deadline) throw new Error(`job ${id} still ${job.status} after ${JOB_DEADLINE_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test('a job runs to succeeded; events are newest first with metrics; fine_tuned_model is served at once', async () => {
  const created = await admin.fineTuning.jobs.create({
    model: FIXTURE_NAME,
    training_file: fileId,
    suffix: 'oa-ft',
    seed: 7,
    method: { type: 'supervised', supervised: { hyperparameters: { n_epochs: 'auto', batch_size: 2, learning_rate_multiplier: 5 } } },
    // @ts-expect-error gentune's extension field, not in the SDK's types
    gentune: { r: 4, lora_alpha: 8, max_steps: 3, lr_scheduler: 'linear' },
  });
  assert.equal(created.object, 'fine_tuning.job');
  assert.ok(created.status === 'queued' || created.status === 'running', created.status);
  assert.equal(created.fine_tuned_model, null);
  assert.equal(created.model, FIXTURE_NAME);
  assert.equal(created.training_file, fileId);
  assert.equal(created.seed, 7);
  assert.deepEqual(created.hyperparameters, { n_epochs: 3, batch_size: 2, learning_rate_multiplier: 5 });
  assert.deepEqual(created.method?.supervised?.hyperparameters, created.hyperparameters);
  assert.deepEqual((created as unknown as { gentune: Record<string, unknown> }).gentune, { method: 'lora', r: 4, lora_alpha: 8, max_steps: 3, lr_scheduler: 'linear', step: 0, total_steps: 0 });

  const job = await waitFor(created.id, (j) => TERMINAL.has(j.status));
  assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
  assert.match(job.fine_tuned_model ?? '', /^oa-ft@\d+$/);
  assert.ok((job.trained_tokens ?? 0) > 0);
  assert.ok(job.finished_at !== null && job.finished_at >= job.created_at);

  const events = [];
  for await (const e of user.fineTuning.jobs.listEvents(job.id, { limit: 2 })) events.push(e);
  assert.deepEqual(events.map((e) => e.id), [...new Set(events.map((e) => e.id))], 'pages do not repeat');
  assert.equal(events[0]!.message, `New fine-tuned model created: ${job.fine_tuned_model}. The job has successfully completed`);
  assert.match(events.at(-1)!.message, /^Job queued/);
  const metrics = events.filter((e) => e.type === 'metrics');
  assert.deepEqual(metrics.map((e) => (e.data as { step: number }).step), [3, 2, 1], 'newest first');
  assert.ok(metrics.every((e) => Number.isFinite((e.data as { train_loss: number }).train_loss)));
  const sequences = events.map((e) => Number(e.id.split('-').at(-1)));
  assert.deepEqual(sequences, [...sequences].sort((a, b) => b - a));

  const checkpoints = (await user.fineTuning.jobs.checkpoints.list(job.id)).data;
  assert.equal(checkpoints.length, 1);
  assert.equal(checkpoints[0]!.fine_tuned_model_checkpoint, job.fine_tuned_model);
  assert.equal(checkpoints[0]!.step_number, 3);

  const models = [];
  for await (const m of user.models.list()) models.push(m.id);
  assert.ok(models.includes(job.fine_tuned_model!), `${job.fine_tuned_model} in ${models.join(', ')}`);
  // Chat with the fine-tuned model through the same SDK: the response names the version that served.
  const chat = await user.chat.completions.create({ model: job.fine_tuned_model!, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
  assert.equal(chat.model, job.fine_tuned_model);
  assert.equal(chat.choices.length, 1);
  assert.equal(chat.choices[0]!.message.role, 'assistant');
});

test('cancel of a running job; the file it reads cannot be deleted meanwhile; cancelling again is 409', async () => {
  const created = await admin.fineTuning.jobs.create({
    model: FIXTURE_NAME, training_file: fileId, suffix: 'oa-cancel',
    // @ts-expect-error gentune's extension field
    gentune: { max_steps: 100_000 },
  });
  await waitFor(created.id, (j) => j.status === 'running');
  await assert.rejects(admin.files.delete(fileId), (err: unknown) => err instanceof OpenAI.ConflictError && /used by fine-tune job/.test(err.message));
  const cancelled = await admin.fineTuning.jobs.cancel(created.id);
  assert.equal(cancelled.status, 'cancelled');
  assert.equal(cancelled.fine_tuned_model, null);
  await assert.rejects(admin.fineTuning.jobs.cancel(created.id), (err: unknown) => err instanceof OpenAI.ConflictError);
  const events = (await user.fineTuning.jobs.listEvents(created.id)).data;
  assert.equal(events[0]!.message, 'The job was cancelled');
  assert.equal((await user.fineTuning.jobs.checkpoints.list(created.id)).data.length, 0, 'a cancelled job has no checkpoint');
  assert.ok(!(await h.engine.listAdapters()).some((a) => a.name === 'oa-cancel'));
});

test('jobs.list pages newest first with after/limit', async () => {
  const first = await user.fineTuning.jobs.list({ limit: 1 });
  assert.equal(first.data.length, 1);
  assert.equal(first.has_more, true);
  const second = await user.fineTuning.jobs.list({ limit: 1, after: first.data[0]!.id });
  assert.equal(second.data.length, 1);
  assert.ok(second.data[0]!.created_at <= first.data[0]!.created_at);
  const all = [];
  for await (const j of user.fineTuning.jobs.list({ limit: 1 })) all.push((j as unknown as { user_provided_suffix: string }).user_provided_suffix);
  assert.deepEqual(all, ['oa-cancel', 'oa-ft']);
  await assert.rejects(user.fineTuning.jobs.list({ after: 'ftjob-nope' }), (err: unknown) => err instanceof OpenAI.BadRequestError && err.param === 'after');
});

test('a user token may read jobs but not create or cancel them (403)', async () => {
  await assert.rejects(user.fineTuning.jobs.create({ model: FIXTURE_NAME, training_file: fileId }), (err: unknown) => err instanceof OpenAI.PermissionDeniedError);
  const [job] = (await user.fineTuning.jobs.list()).data;
  await assert.rejects(user.fineTuning.jobs.cancel(job!.id), (err: unknown) => err instanceof OpenAI.PermissionDeniedError);
});

test('request errors name the field: unknown hyperparameter, gentune settings, method, model, files', async () => {
  const create = (body: Record<string, unknown>) => admin.fineTuning.jobs.create({ model: FIXTURE_NAME, training_file: fileId, ...body } as never);
  const cases: [Record<string, unknown>, number, string, RegExp][] = [
    [{ hyperparameters: { n_epochs: 1, warmup: 3 } }, 400, 'hyperparameters.warmup', /`hyperparameters\.warmup` is not supported/],
    [{ hyperparameters: { n_epochs: 0 } }, 400, 'hyperparameters.n_epochs', /`hyperparameters\.n_epochs` must be >= 1/],
    [{ method: { type: 'supervised', supervised: { hyperparameters: { batch_size: 99 } } } }, 400, 'method.supervised.hyperparameters.batch_size', /limits\.max_batch_size/],
    [{ hyperparameters: { learning_rate_multiplier: -1 } }, 400, 'hyperparameters.learning_rate_multiplier', /must be > 0/],
    [{ gentune: { r: 0 } }, 400, 'gentune.r', /`gentune\.r` must be >= 1 and <= 256, got 0/],
    [{ gentune: { lora_rank: 4 } }, 400, 'gentune.lora_rank', /is not supported/],
    [{ gentune: { method: 'last_layers', r: 4, num_layers: 1 } }, 400, 'gentune.r', /does not apply/],
    [{ method: { type: 'dpo' } }, 400, 'method.type', /`method\.type` must be "supervised"/],
    [{ suffix: 'bad/name' }, 400, 'suffix', /`suffix` must not contain/],
    [{ integrations: [] }, 400, 'integrations', /`integrations` is not supported/],
    [{ model: 'gpt-4o-mini' }, 404, 'model', /`model` "gpt-4o-mini"/],
    [{ training_file: 'ds-nope' }, 404, 'training_file', /`training_file` "ds-nope": no such dataset/],
    [{ validation_file: 'ds-nope' }, 404, 'validation_file', /`validation_file` "ds-nope"/],
  ];
  for (const [body, status, param, message] of cases) {
    await assert.rejects(create(body), (err: unknown) => {
      assert.ok(err instanceof OpenAI.APIError, `${JSON.stringify(body)}: ${String(err)}`);
      assert.equal(err.status, status, `${JSON.stringify(body)}: ${err.message}`);
      assert.equal(err.param, param, `${JSON.stringify(body)}: ${err.message}`);
      assert.match(err.message, message);
      return true;
    });
  }
  await assert.rejects(user.fineTuning.jobs.retrieve('ftjob-nope'), (err: unknown) => err instanceof OpenAI.NotFoundError && err.param === 'fine_tuning_job_id');
});
