import { test } from 'node:test';
import assert from 'node:assert/strict';
import { status as Code } from '@grpc/grpc-js';
import {
  AlreadyExists,
  Cancelled,
  DeadlineExceeded,
  ERROR_KINDS,
  FailedPrecondition,
  GentuneError,
  InvalidArgument,
  NotFound,
  PermissionDenied,
  ResourceExhausted,
  Unauthenticated,
  Unavailable,
  type ErrorCode,
} from '../../../src/common/errors.js';
import { toGrpcStatus } from '../../../src/server/status.js';

function recorder() {
  const logged: { obj: unknown; msg: string }[] = [];
  return { logged, log: { error: (obj: unknown, msg: string) => logged.push({ obj, msg }) } as never };
}

test('every domain error keeps its message and maps to its gRPC code', () => {
  const cases: [GentuneError, Code][] = [
    [new InvalidArgument('`temperature` must be >= 0, got -1'), Code.INVALID_ARGUMENT],
    [new NotFound('adapter "x" not found'), Code.NOT_FOUND],
    [new AlreadyExists('exists'), Code.ALREADY_EXISTS],
    [new FailedPrecondition('already finished'), Code.FAILED_PRECONDITION],
    [new ResourceExhausted('queue full'), Code.RESOURCE_EXHAUSTED],
    [new Unavailable('loading'), Code.UNAVAILABLE],
    [new Cancelled('cancelled'), Code.CANCELLED],
    [new DeadlineExceeded('too slow'), Code.DEADLINE_EXCEEDED],
    [new PermissionDenied('no'), Code.PERMISSION_DENIED],
    [new Unauthenticated('who'), Code.UNAUTHENTICATED],
  ];
  const { log, logged } = recorder();
  for (const [err, code] of cases) assert.deepEqual(toGrpcStatus(err, log), { code, details: err.message });
  assert.equal(logged.length, 0, 'domain errors are not logged as internal');
});

test("the error table's gRPC numbers are grpc-js's codes of the same name", () => {
  for (const [name, kind] of Object.entries(ERROR_KINDS)) assert.equal(kind.grpcCode, Code[name as keyof typeof Code], name);
});

test('unknown errors become INTERNAL "internal error"; the cause goes to the log only', () => {
  const { log, logged } = recorder();
  const secret = new TypeError('cannot read properties of undefined (reading "weights") at /srv/model.ts:12');
  assert.deepEqual(toGrpcStatus(secret, log), { code: Code.INTERNAL, details: 'internal error' });
  assert.equal(logged.length, 1);
  assert.deepEqual(logged[0]!.obj, { err: secret });
  assert.deepEqual(toGrpcStatus('a string', log), { code: Code.INTERNAL, details: 'internal error' });
  assert.deepEqual(toGrpcStatus(new GentuneError('BOGUS' as ErrorCode, 'x'), log), { code: Code.INTERNAL, details: 'internal error' });
});

test('an AbortError is CANCELLED', () => {
  const err = new DOMException('aborted', 'AbortError');
  assert.equal(toGrpcStatus(err).code, Code.CANCELLED);
});
