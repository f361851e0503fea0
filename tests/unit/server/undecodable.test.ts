import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgument } from '../../../src/common/errors.js';
import { GenerateRequest } from '../../../src/gen/gentune/v1/generate.js';
import { ModelServiceService } from '../../../src/gen/gentune/v1/service.js';
import { checkDecoded, decodedStream, tolerantDecoding } from '../../../src/server/undecodable.js';

const GARBAGE = Buffer.from([0xff, 0xff, 0xff]);

test('tolerant deserializers decode what decodes and mark what does not, without throwing', () => {
  assert.throws(() => ModelServiceService.generate.requestDeserialize(GARBAGE), 'the generated deserializer throws (grpc-js then answers INTERNAL)');
  const service = tolerantDecoding(ModelServiceService, 'gentune.v1.ModelService');
  assert.deepEqual(Object.keys(service), Object.keys(ModelServiceService));
  assert.equal(service.generate.path, ModelServiceService.generate.path);
  const good = GenerateRequest.fromPartial({ prompt: 'hi', adapter: 'a' });
  const decoded = service.generate.requestDeserialize(Buffer.from(GenerateRequest.encode(good).finish()));
  assert.deepEqual(checkDecoded('Generate', decoded), good);
  const bad = service.generate.requestDeserialize(GARBAGE);
  assert.throws(() => checkDecoded('Generate', bad), (err: unknown) => {
    assert.ok(err instanceof InvalidArgument);
    assert.match(err.message, /^the request is not a valid Generate request message: .+/);
    return true;
  });
});

test('decodedStream passes decoded messages through and fails at the first undecodable one', async () => {
  const service = tolerantDecoding(ModelServiceService, 'gentune.v1.ModelService');
  const ok = service.listDatasets.requestDeserialize(Buffer.alloc(0));
  const bad = service.uploadDataset.requestDeserialize(GARBAGE);
  async function* messages() {
    yield ok;
    yield bad;
    yield ok;
  }
  const seen: unknown[] = [];
  await assert.rejects(
    (async () => {
      for await (const m of decodedStream('UploadDataset', messages())) seen.push(m);
    })(),
    /not a valid UploadDataset request message/,
  );
  assert.equal(seen.length, 1);
});
