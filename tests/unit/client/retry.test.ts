import { test } from 'node:test';
import assert from 'node:assert/strict';
import { status as Code } from '@grpc/grpc-js';
import { backoffMs, DEFAULT_RETRY, isRetryable, withRetry } from '../../../src/client/retry.js';

const unavailable = () => Object.assign(new Error('14 UNAVAILABLE'), { code: Code.UNAVAILABLE });
const fast = { ...DEFAULT_RETRY, initialBackoffMs: 1, maxBackoffMs: 2 };

test('retries UNAVAILABLE until success', async () => {
  let calls = 0;
  const out = await withRetry(fast, Date.now() + 5000, async () => {
    if (++calls < 3) throw unavailable();
    return 'ok';
  });
  assert.equal(out, 'ok');
  assert.equal(calls, 3);
});

test('does not retry other codes', async () => {
  let calls = 0;
  await assert.rejects(
    withRetry(fast, Date.now() + 5000, async () => {
      calls++;
      throw Object.assign(new Error('5 NOT_FOUND'), { code: Code.NOT_FOUND });
    }),
    /NOT_FOUND/,
  );
  assert.equal(calls, 1);
});

test('gives up after maxAttempts, or when the next wait would pass the deadline', async () => {
  let calls = 0;
  await assert.rejects(withRetry({ ...fast, maxAttempts: 4 }, Date.now() + 5000, async () => (calls++, Promise.reject(unavailable()))));
  assert.equal(calls, 4);
  calls = 0;
  const slow = { ...DEFAULT_RETRY, initialBackoffMs: 10_000, maxBackoffMs: 10_000 };
  const started = Date.now();
  await assert.rejects(withRetry(slow, Date.now() + 50, async () => (calls++, Promise.reject(unavailable()))));
  assert.ok(calls <= 2 && Date.now() - started < 1000);
});

test('backoff grows exponentially with full jitter, capped', () => {
  const max = () => 0.999999;
  assert.equal(backoffMs(DEFAULT_RETRY, 2, max), 99);
  assert.equal(backoffMs(DEFAULT_RETRY, 3, max), 199);
  assert.equal(backoffMs(DEFAULT_RETRY, 10, max), 1999);
  assert.equal(backoffMs(DEFAULT_RETRY, 3, () => 0), 0);
  assert.ok(isRetryable(unavailable()) && !isRetryable(new Error('x')) && !isRetryable(null));
});
