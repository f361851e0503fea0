/**
 * Errors across the worker boundary keep their kind: what the worker posts
 * (toWireError) goes through a real MessageChannel (structured clone, as the
 * engine and fine-tune workers' ports do) and comes back (fromWireError) as
 * the same GentuneError subclass, which status.ts then maps to its own code.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MessageChannel } from 'node:worker_threads';
import { status as Code } from '@grpc/grpc-js';
import { ERROR_KINDS, GentuneError, PermissionDenied, Unauthenticated, type ErrorClass, type ErrorCode } from '../../../../src/common/errors.js';
import { fromWireError, toWireError, type WireError } from '../../../../src/engine/worker/wire-error.js';
import { toGrpcStatus } from '../../../../src/server/status.js';

/** One trip through a real port: the structured clone a worker's postMessage makes. */
async function acrossPort(wire: WireError): Promise<WireError> {
  const { port1, port2 } = new MessageChannel();
  try {
    const got = new Promise<WireError>((resolve) => port2.once('message', resolve));
    port1.postMessage(wire);
    return await got;
  } finally {
    port1.close();
    port2.close();
  }
}

test('PermissionDenied and Unauthenticated cross the worker boundary as themselves and keep their gRPC code', async () => {
  const cases: [GentuneError, ErrorClass, Code][] = [
    [new PermissionDenied('`FineTune` needs the admin role'), PermissionDenied, Code.PERMISSION_DENIED],
    [new Unauthenticated('invalid bearer token'), Unauthenticated, Code.UNAUTHENTICATED],
  ];
  for (const [err, Class, code] of cases) {
    const back = fromWireError(await acrossPort(toWireError(err)));
    assert.ok(back instanceof Class, `${err.code} comes back as ${Class.name}, got ${back.constructor.name}`);
    assert.equal(back.message, err.message);
    assert.deepEqual(toGrpcStatus(back), { code, details: err.message });
  }
});

test('every error kind comes back from the wire as its own class', async () => {
  for (const [code, kind] of Object.entries(ERROR_KINDS) as [ErrorCode, (typeof ERROR_KINDS)[ErrorCode]][]) {
    const back = fromWireError(await acrossPort(toWireError(new kind.errorClass(`a ${code}`))));
    assert.equal(back.constructor, kind.errorClass, code);
    assert.equal((back as GentuneError).code, code);
  }
});
