import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { status as Code } from '@grpc/grpc-js';
import { DatasetFormat, UploadDatasetChunk } from '../../src/gen/gentune/v1/datasets.js';
import { rejectsWith, startHarness, type Harness } from './helpers/harness.js';

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

  test('an upload over --max-upload-bytes is RESOURCE_EXHAUSTED', async () => {
    const big = Buffer.alloc(70 * 1024, 0x20);
    await rejectsWith(h.client.uploadDataset({ name: 'big' }, big), Code.RESOURCE_EXHAUSTED, /at most 65536 bytes \(--max-upload-bytes\)/);
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
  });
});
