/**
 * Issue 9: every server limit is configurable and enforced over real gRPC
 * with RESOURCE_EXHAUSTED or INVALID_ARGUMENT, in a message that names the
 * limit by its config key and its flag ("limits.max_prompt_tokens
 * (--max-prompt-tokens) 8"), except --max-message-bytes, which grpc-js
 * enforces itself (its message quotes the configured number of bytes).
 * Servers start with tiny limits; each limit is also shown not to refuse
 * what fits.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { status as Code } from '@grpc/grpc-js';
import { FIXTURE_NAME, longGeneration, LONG_MAX_NEW_TOKENS } from './helpers/fixture-model.js';
import { collect, eventually, rejectsWith, startHarness, type Harness } from './helpers/harness.js';

const EXAMPLES = [
  { prompt: 'Q: 1?', completion: ' one' },
  { prompt: 'Q: 2?', completion: ' two' },
  { prompt: 'Q: 3?', completion: ' three' },
];
const jsonl = (n: number) =>
  Buffer.from(Array.from({ length: n }, (_, i) => JSON.stringify({ prompt: `p${i}`, completion: ` c${i}` })).join('\n'));

/** A regex that matches a limit's label: "limits.max_queue (--max-queue) 0". */
const named = (snake: string, value: number) => new RegExp(`limits\\.${snake} \\(--${snake.replaceAll('_', '-')}\\) ${value}\\b`);

describe('limits: request sizes and stored data (one server with tiny limits)', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      limits: {
        maxPromptTokens: 8,
        maxNewTokens: 8,
        maxUploadBytes: 256,
        maxDatasetExamples: 3,
        maxQueuedJobs: 0,
        maxBatchSize: 2,
        maxMessageBytes: 4096,
      },
    });
  });
  after(() => h.close());

  test('GetServerInfo reports every limit as configured', async () => {
    const limits = (await h.client.getServerInfo()).limits;
    assert.ok(limits);
    assert.deepEqual(
      [limits.maxPromptTokens, limits.maxNewTokens, Number(limits.maxUploadBytes), limits.maxDatasetExamples, limits.maxQueuedJobs, limits.maxBatchSize, Number(limits.maxMessageBytes)],
      [8, 8, 256, 3, 0, 2, 4096],
    );
  });

  test('--max-prompt-tokens: prompt text and prompt_token_ids are INVALID_ARGUMENT naming the limit', async () => {
    await h.client.generateText({ prompt: 'x'.repeat(8), sampling: { maxNewTokens: 1 } }); // byte tokenizer: 8 tokens fit
    await rejectsWith(h.client.generateText({ prompt: 'x'.repeat(9), sampling: { maxNewTokens: 1 } }), Code.INVALID_ARGUMENT, named('max_prompt_tokens', 8));
    await rejectsWith(h.client.generateText({ promptTokenIds: Array.from({ length: 9 }, () => 1) }), Code.INVALID_ARGUMENT, named('max_prompt_tokens', 8));
  });

  test('--max-new-tokens: Generate and Evaluate generation settings are INVALID_ARGUMENT naming the limit', async () => {
    assert.ok((await h.client.generateText({ prompt: 'a', sampling: { maxNewTokens: 8, temperature: 0 } })).usage!.generatedTokens <= 8);
    await rejectsWith(h.client.generateText({ prompt: 'a', sampling: { maxNewTokens: 9 } }), Code.INVALID_ARGUMENT, named('max_new_tokens', 8));
    await rejectsWith(
      h.client.evaluate({ examples: EXAMPLES, metrics: [], generation: { maxNewTokens: 9 } }),
      Code.INVALID_ARGUMENT,
      named('max_new_tokens', 8),
    );
  });

  test('--max-upload-bytes: an upload over it is RESOURCE_EXHAUSTED naming the limit; nothing is stored', async () => {
    const big = Buffer.from(`${JSON.stringify({ text: 'y'.repeat(300) })}\n`);
    await rejectsWith(h.client.uploadDataset({ name: 'big' }, big), Code.RESOURCE_EXHAUSTED, named('max_upload_bytes', 256));
    assert.deepEqual(await h.client.listDatasets(), []);
  });

  test('--max-dataset-examples: uploads and inline examples over it are refused naming the limit', async () => {
    const ok = await h.client.uploadDataset({ name: 'three' }, jsonl(3));
    assert.equal(ok.numExamples, 3);
    await rejectsWith(h.client.uploadDataset({ name: 'four' }, jsonl(4)), Code.RESOURCE_EXHAUSTED, named('max_dataset_examples', 3));
    assert.deepEqual((await h.client.listDatasets()).map((d) => d.name), ['three']);
    const four = [...EXAMPLES, { text: 'one more' }];
    await rejectsWith(h.client.evaluate({ examples: four }), Code.INVALID_ARGUMENT, named('max_dataset_examples', 3));
    await rejectsWith(collect(h.client.fineTune({ adapter: 'four', examples: four })), Code.INVALID_ARGUMENT, named('max_dataset_examples', 3));
    await h.client.deleteDataset(ok.id);
  });

  test('--max-batch-size: a fine-tune batch_size over it is INVALID_ARGUMENT naming the limit', async () => {
    await rejectsWith(
      collect(h.client.fineTune({ adapter: 'big-batch', examples: EXAMPLES, hyperparameters: { batchSize: 3 } })),
      Code.INVALID_ARGUMENT,
      named('max_batch_size', 2),
    );
  });

  test('--max-queued-jobs: a job that would wait beyond it is RESOURCE_EXHAUSTED naming the limit', async () => {
    // Limit 0: a job that gets the free training slot at once is fine, one that would wait is not.
    const first = h.client.fineTune({
      baseModel: FIXTURE_NAME,
      adapter: 'long-job',
      examples: EXAMPLES,
      hyperparameters: { maxSteps: 100_000, batchSize: 1, evalIntervalSteps: 0 },
    });
    const queued = await first.next();
    assert.equal(queued.value?.event?.$case, 'queued');
    const jobId = queued.value!.jobId;
    try {
      await rejectsWith(
        collect(h.client.fineTune({ adapter: 'second-job', examples: EXAMPLES, hyperparameters: { maxSteps: 1 } })),
        Code.RESOURCE_EXHAUSTED,
        named('max_queued_jobs', 0),
      );
    } finally {
      await first.return(undefined);
      await h.client.cancelFineTune(jobId);
    }
    assert.equal((await h.client.listFineTuneJobs()).filter((j) => j.request?.adapter === 'second-job').length, 0, 'the refused job was not stored');
  });

  test('--max-message-bytes: grpc-js refuses a larger request with RESOURCE_EXHAUSTED quoting the limit', async () => {
    await h.client.generateText({ prompt: 'z'.repeat(8), sampling: { maxNewTokens: 1 }, adapter: '' }); // small messages pass
    const err = await h.client.generateText({ prompt: 'z'.repeat(5000) }).then(
      () => assert.fail('a 5000-byte message passed a 4096-byte limit'),
      (e: { code?: number; details?: string }) => e,
    );
    assert.equal(err.code, Code.RESOURCE_EXHAUSTED, String(err.details));
    assert.match(String(err.details), /larger than max \(\d+ vs\.? 4096\)/);
    // The server is fine after it.
    assert.equal((await h.client.getServerInfo()).ready, true);
  });
});

describe('limits: concurrency (servers with tiny stream and queue limits)', () => {
  test('--max-concurrent-streams: a stream beyond it is RESOURCE_EXHAUSTED naming the limit', async () => {
    const h = await startHarness({ limits: { maxConcurrentStreams: 1, maxNewTokens: LONG_MAX_NEW_TOKENS } });
    try {
      const ac = new AbortController();
      const open = collect(h.client.generate(longGeneration(), { signal: ac.signal })).catch(() => undefined);
      await eventually(() => h.engine.generateSignals.length === 1, 5000, 'the first stream');
      await rejectsWith(collect(h.client.generate({ prompt: 'x' })), Code.RESOURCE_EXHAUSTED, named('max_concurrent_streams', 1));
      await rejectsWith(collect(h.client.watchFineTune('ft-any')), Code.RESOURCE_EXHAUSTED, named('max_concurrent_streams', 1));
      ac.abort();
      await open;
    } finally {
      await h.close();
    }
  });

  test('--max-queue: a Generate that would wait beyond it is RESOURCE_EXHAUSTED naming the limit', async () => {
    const h = await startHarness({ limits: { maxBatchSize: 1, maxQueue: 0, maxNewTokens: LONG_MAX_NEW_TOKENS } });
    try {
      const ac = new AbortController();
      const stream = h.client.generate(longGeneration(), { signal: ac.signal });
      await stream.next(); // the first token: it holds the only batch slot
      await rejectsWith(h.client.generateText({ prompt: 'x', sampling: { maxNewTokens: 1 } }), Code.RESOURCE_EXHAUSTED, named('max_queue', 0));
      ac.abort();
      await collect(stream).catch(() => undefined);
    } finally {
      await h.close();
    }
  });
});
