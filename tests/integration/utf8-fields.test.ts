/**
 * Invalid UTF-8 in a string field is refused, naming the field (issue 18):
 * protobuf decoding (ts-proto's reader, like protobufjs) replaces it with
 * U+FFFD, so a prompt with a stray byte ran as some other prompt. The gRPC
 * server checks every string field of the raw request bytes against the
 * descriptors; the HTTP API checks the raw JSON body before parsing it.
 * Requests are hand-encoded here: no client library sends invalid UTF-8.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { FIXTURE_NAME } from './helpers/fixture-model.js';
import { startHarness, type Harness } from './helpers/harness.js';

const Code = grpc.status;
const BAD = Buffer.from([0x61, 0xff, 0x62]); // "a", a byte no UTF-8 text has, "b"
const OK = (text: string) => Buffer.from(text, 'utf8');

/** A length-delimited field: tag (number, wire type 2), length, bytes. */
const field = (w: BinaryWriter, no: number, bytes: Uint8Array) => w.uint32((no << 3) | 2).bytes(bytes);

/** Calls `method` with the raw request `body`; streams are read to their end. Resolves to the status. */
function rawCall(h: Harness, method: string, body: Uint8Array, stream: 'server' | 'client' | 'unary'): Promise<{ code: number; details: string }> {
  const client = new grpc.Client(h.address, grpc.credentials.createInsecure());
  const path = `/gentune.v1.ModelService/${method}`;
  const id = (b: Buffer) => b;
  return new Promise((resolve) => {
    const done = (s: { code: number; details: string }) => {
      client.close();
      resolve({ code: s.code, details: s.details });
    };
    if (stream === 'server') {
      const call = client.makeServerStreamRequest(path, id, id, Buffer.from(body), {});
      call.on('data', () => {});
      call.on('error', () => {});
      call.on('status', done);
    } else if (stream === 'client') {
      const call = client.makeClientStreamRequest(path, id, id, () => {});
      call.on('status', done);
      call.write(Buffer.from(body));
      call.end();
    } else {
      const call = client.makeUnaryRequest(path, id, id, Buffer.from(body), () => {});
      call.on('status', done);
    }
  });
}

/** POSTs raw bytes as application/json; resolves to the status and the error message. */
function postRaw(h: Harness, path: string, body: Buffer): Promise<{ status: number; message: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(new URL(`${h.openaiBaseUrl}${path}`), { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        resolve({ status: res.statusCode ?? 0, message: res.statusCode === 200 ? '' : (JSON.parse(text) as { error: { message: string } }).error.message });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('invalid UTF-8 in string fields', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ http: true });
  });
  after(() => h.close());

  test('gRPC: Generate names the field, in nested messages and lists too; nothing reaches the engine', async () => {
    const before = h.engine.generateParams.length;
    const cases: [Uint8Array, string][] = [
      [field(new BinaryWriter(), 1, BAD).finish(), '`prompt` is not valid UTF-8 (byte 2 of 3)'],
      [field(new BinaryWriter(), 7, field(field(new BinaryWriter(), 1, OK('user')), 2, BAD).finish()).finish(), '`messages[0].content` is not valid UTF-8 (byte 2 of 3)'],
      [
        field(field(new BinaryWriter(), 7, field(field(new BinaryWriter(), 1, OK('user')), 2, OK('hi')).finish()), 7, field(new BinaryWriter(), 1, BAD).finish()).finish(),
        '`messages[1].role` is not valid UTF-8 (byte 2 of 3)',
      ],
      [field(field(new BinaryWriter(), 1, OK('hello')), 4, field(field(new BinaryWriter(), 7, OK('.')), 7, BAD).finish()).finish(), '`sampling.stop[1]` is not valid UTF-8 (byte 2 of 3)'],
      [field(field(new BinaryWriter(), 1, OK('hello')), 3, BAD).finish(), '`adapter` is not valid UTF-8 (byte 2 of 3)'],
    ];
    for (const [body, message] of cases) {
      const s = await rawCall(h, 'Generate', body, 'server');
      assert.equal(s.code, Code.INVALID_ARGUMENT, message);
      assert.equal(s.details, message);
    }
    assert.equal(h.engine.generateParams.length, before);
    // The same request with valid text runs.
    const ok = await rawCall(h, 'Generate', field(field(new BinaryWriter(), 1, OK('héllo')), 4, new BinaryWriter().uint32((1 << 3) | 0).uint32(1).finish()).finish(), 'server');
    assert.equal(ok.code, Code.OK, ok.details);
  });

  test('gRPC: other methods too (a unary lookup, a client-streamed upload name)', async () => {
    const del = await rawCall(h, 'DeleteDataset', field(new BinaryWriter(), 1, BAD).finish(), 'unary');
    assert.deepEqual(del, { code: Code.INVALID_ARGUMENT, details: '`dataset_id` is not valid UTF-8 (byte 2 of 3)' });
    const upload = await rawCall(h, 'UploadDataset', field(new BinaryWriter(), 1, field(new BinaryWriter(), 1, BAD).finish()).finish(), 'client');
    assert.deepEqual(upload, { code: Code.INVALID_ARGUMENT, details: '`metadata.name` is not valid UTF-8 (byte 2 of 3)' });
  });

  test('HTTP: a JSON body with invalid UTF-8 is a 400 saying so, at which byte; nothing reaches the engine', async () => {
    const before = h.engine.generateParams.length;
    const body = Buffer.concat([OK(`{"model":"${FIXTURE_NAME}","prompt":"`), BAD, OK('","max_tokens":1}')]);
    const at = body.indexOf(0xff) + 1;
    for (const path of ['/completions', '/chat/completions']) {
      const r = await postRaw(h, path, body);
      assert.equal(r.status, 400, path);
      assert.equal(r.message, `request body is not valid UTF-8 (byte ${at} of ${body.length})`);
    }
    assert.equal(h.engine.generateParams.length, before);
    const good = await postRaw(h, '/completions', OK(`{"model":"${FIXTURE_NAME}","prompt":"héllo","max_tokens":1}`));
    assert.equal(good.status, 200, good.message);
  });
});
