import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { status as Code } from '@grpc/grpc-js';
import { DatasetFormat, UploadDatasetChunk } from '../../src/gen/gentune/v1/datasets.js';
import { JobState } from '../../src/gen/gentune/v1/fine_tune.js';
import { collect, eventually, rejectsWith, startHarness, type Harness } from './helpers/harness.js';

const JSONL = Array.from({ length: 50 }, (_, i) => JSON.stringify({ prompt: `Q${i}: é?`, completion: ` A${i} ✓` })).join('\n') + '\n';

/** Sends raw chunks (to test what the typed client would never send). */
function rawUpload(h: Harness, chunks: UploadDatasetChunk[]): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const call = h.client.raw.uploadDataset((err, res) => (err ? reject(err) : resolve(res)));
    for (const c of chunks) call.write(c);
    call.end();
  });
}

describe('Datasets', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ limits: { maxUploadBytes: 64 * 1024 } });
  });
  after(() => h.close());

  test('UploadDataset stores a JSONL file sent in chunks split anywhere (even inside a UTF-8 character)', async () => {
    const bytes = Buffer.from(JSONL);
    const pieces = [bytes.subarray(0, 7), bytes.subarray(7, 8), bytes.subarray(8)];
    const ds = await h.client.uploadDataset({ name: 'qa', format: DatasetFormat.DATASET_FORMAT_PROMPT_COMPLETION }, pieces);
    assert.equal(ds.name, 'qa');
    assert.equal(ds.format, DatasetFormat.DATASET_FORMAT_PROMPT_COMPLETION);
    assert.equal(ds.numExamples, 50);
    assert.equal(ds.sizeBytes, bytes.length);
    assert.equal(ds.sha256, createHash('sha256').update(bytes).digest('hex'));
    assert.ok(ds.id.length > 0 && ds.createdAt instanceof Date);

    const listed = await h.client.listDatasets();
    assert.ok(listed.some((d) => d.id === ds.id));
    await h.client.deleteDataset(ds.id);
    assert.ok(!(await h.client.listDatasets()).some((d) => d.id === ds.id));
    await rejectsWith(h.client.deleteDataset(ds.id), Code.NOT_FOUND, new RegExp(ds.id));
  });

  let kept: Awaited<ReturnType<Harness['client']['uploadDataset']>>;
  test('(before the bad input below: a dataset that must survive it)', async () => {
    kept = await h.client.uploadDataset({ name: 'kept' }, Buffer.from(JSONL));
  });

  test('format UNSPECIFIED is detected from the first line', async () => {
    const ds = await h.client.uploadDataset({ name: 'chat' }, Buffer.from('{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}\n'));
    assert.equal(ds.format, DatasetFormat.DATASET_FORMAT_CHAT);
  });

  test('an invalid line fails with INVALID_ARGUMENT naming the line, and nothing is stored', async () => {
    const before = (await h.client.listDatasets()).length;
    const text = '{"prompt":"a","completion":"b"}\n{"prompt":"c"}\n';
    await rejectsWith(h.client.uploadDataset({ name: 'broken', format: DatasetFormat.DATASET_FORMAT_PROMPT_COMPLETION }, Buffer.from(text)), Code.INVALID_ARGUMENT, /line 2: missing `completion`/);
    assert.equal((await h.client.listDatasets()).length, before);
  });

  const { DATASET_FORMAT_UNSPECIFIED: AUTO, DATASET_FORMAT_CHAT: CHAT } = DatasetFormat;
  const malformed: [string, string, DatasetFormat, RegExp][] = [
    ['not JSON', '{"text":"a"}\n{"text": "b"\n', AUTO, /^line 2: invalid JSON$/],
    ['not an object', '{"text":"a"}\n\n[1, 2]\n', AUTO, /^line 3: /],
    ['a field of the wrong type', '{"prompt":"a","completion":7}\n', AUTO, /^line 1: .*`completion`/],
    ['shapes mixed', '{"text":"a"}\n{"prompt":"p","completion":"c"}\n', AUTO, /^line 2: expected a text example, got prompt_completion$/],
    ['a format other than declared', '{"text":"a"}\n', CHAT, /^line 1: /],
    ['invalid UTF-8', '{"text":"a\xff"}\n', AUTO, /^line 1: invalid UTF-8$/],
    ['no examples', '\n  \n', AUTO, /^dataset has no examples$/],
  ];
  for (const [name, text, format, message] of malformed) {
    test(`UploadDataset INVALID_ARGUMENT naming the line: ${name}; nothing stored`, async () => {
      const before = await h.client.listDatasets();
      await rejectsWith(h.client.uploadDataset({ name: 'bad', format }, Buffer.from(text, 'latin1')), Code.INVALID_ARGUMENT, message);
      assert.deepEqual(await h.client.listDatasets(), before);
    });
  }

  test('an upload over --max-upload-bytes is RESOURCE_EXHAUSTED, whole or in small chunks; nothing stored', async () => {
    const before = await h.client.listDatasets();
    const big = Buffer.alloc(70 * 1024, 0x20);
    await rejectsWith(h.client.uploadDataset({ name: 'big' }, big), Code.RESOURCE_EXHAUSTED, /at most limits\.max_upload_bytes \(--max-upload-bytes\) 65536 bytes/);
    const line = Buffer.from(JSON.stringify({ text: 'x'.repeat(1000) }) + '\n');
    const lines = Array.from({ length: 70 }, () => line); // every chunk small and valid, the sum too big
    await rejectsWith(h.client.uploadDataset({ name: 'big' }, lines), Code.RESOURCE_EXHAUSTED, /at most limits\.max_upload_bytes \(--max-upload-bytes\) 65536 bytes/);
    assert.deepEqual(await h.client.listDatasets(), before);
  });

  test('the stream must start with metadata, and carry it once', async () => {
    const meta = UploadDatasetChunk.fromPartial({ payload: { $case: 'metadata', value: { name: 'x' } } });
    const data = UploadDatasetChunk.fromPartial({ payload: { $case: 'data', value: Buffer.from('{"text":"a"}\n') } });
    await rejectsWith(rawUpload(h, []), Code.INVALID_ARGUMENT, /the first message must set `metadata`, got an empty stream/);
    await rejectsWith(rawUpload(h, [data]), Code.INVALID_ARGUMENT, /the first message must set `metadata`, got `data`/);
    await rejectsWith(rawUpload(h, [meta, data, meta]), Code.INVALID_ARGUMENT, /`metadata` must only be in the first message, got it in message 3/);
    const huge = UploadDatasetChunk.fromPartial({ payload: { $case: 'data', value: Buffer.alloc(1024 * 1024 + 1) } });
    await rejectsWith(rawUpload(h, [meta, huge]), Code.INVALID_ARGUMENT, /`data` must be at most 1048576 bytes per message/);
  });

  const badMeta: [string, Record<string, unknown>, RegExp][] = [
    ['empty name', { name: '' }, /^`name` is required/],
    ['name path', { name: '../../etc/passwd' }, /`name` must not contain '\/', '\\' or '\.\.', got "\.\.\/\.\.\/etc\/passwd"/],
    ['name slash', { name: 'a/b' }, /`name` must not contain/],
    ['name backslash', { name: 'a\\b' }, /`name` must not contain '\/', '\\' or '\.\.', got "a\\\\b"/],
    ['name dot-dot', { name: '..' }, /`name` must not contain/],
    ['name too long', { name: 'n'.repeat(129) }, /`name` must be at most 128 characters/],
    ['name control char', { name: 'a\nb' }, /`name` must not contain control characters/],
    ['unknown format', { name: 'x', format: 9 }, /`format` must be one of DATASET_FORMAT_UNSPECIFIED.*got 9/],
  ];
  for (const [name, meta, message] of badMeta) {
    test(`UploadDataset INVALID_ARGUMENT: ${name}`, async () => {
      await rejectsWith(h.client.uploadDataset(meta, Buffer.from('{"text":"a"}\n')), Code.INVALID_ARGUMENT, message);
    });
  }

  test('DeleteDataset validates the id', async () => {
    await rejectsWith(h.client.deleteDataset(''), Code.INVALID_ARGUMENT, /^`dataset_id` is required/);
    await rejectsWith(h.client.deleteDataset('a/b'), Code.INVALID_ARGUMENT, /`dataset_id` must not contain/);
    await rejectsWith(h.client.deleteDataset('a\\b'), Code.INVALID_ARGUMENT, /`dataset_id` must not contain/);
    await rejectsWith(h.client.deleteDataset('..'), Code.INVALID_ARGUMENT, /`dataset_id` must not contain/);
  });

  test('DeleteDataset of a dataset a job is reading is FAILED_PRECONDITION; it works once the job ended', async () => {
    const ds = await h.client.uploadDataset({ name: 'in-use' }, Buffer.from(JSONL));
    const events: string[] = [];
    let jobId = '';
    const job = (async () => {
      for await (const e of h.client.fineTune({ adapter: 'uses-ds', datasetId: ds.id, hyperparameters: { maxSteps: 100_000 } })) {
        events.push(e.event!.$case);
        jobId = e.jobId;
      }
    })();
    await eventually(() => events.includes('progress'), 10_000, 'the job to run');
    await rejectsWith(h.client.deleteDataset(ds.id), Code.FAILED_PRECONDITION, new RegExp(`dataset "${ds.id}" is used by fine-tune job "${jobId}"`));
    assert.equal((await h.client.cancelFineTune(jobId)).state, JobState.JOB_STATE_CANCELLED);
    await job;
    await h.client.deleteDataset(ds.id);
  });

  test('bad input left the stored datasets as they were, and nothing half-written on disk', async () => {
    const listed = await h.client.listDatasets();
    assert.deepEqual(listed.find((d) => d.id === kept.id), kept);
    const onDisk = readdirSync(join(h.config.dataDir, 'datasets')).sort();
    assert.deepEqual(onDisk, listed.map((d) => d.id).sort(), 'only published datasets, no temp folders');
    // The kept dataset still reads back whole: evaluate on every example.
    const res = await h.client.evaluate({ datasetId: kept.id });
    assert.equal(res.numExamples, 50);
  });
});
