import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { StatusObject } from '@grpc/grpc-js';
import { FinishReason } from '../../src/gen/gentune/v1/generate.js';
import { longGeneration } from './helpers/fixture-model.js';
import { eventually, startHarness } from './helpers/harness.js';

test('a client that stops reading at finish_reason lets the call end with OK instead of cancelling it (an HTTP/2 stream reset)', async () => {
  const h = await startHarness();
  // The status each Generate call ends with on the client side: a cancel shows as CANCELLED there.
  const statuses: StatusObject[] = [];
  const generate = h.client.raw.generate.bind(h.client.raw);
  h.client.raw.generate = ((...args: Parameters<typeof generate>) => {
    const call = generate(...args);
    call.on('status', (s: StatusObject) => statuses.push(s));
    return call;
  }) as typeof generate;
  try {
    const calls = 10;
    for (let i = 0; i < calls; i++) {
      for await (const m of h.client.generate(longGeneration(3))) {
        if (m.finishReason !== FinishReason.FINISH_REASON_UNSPECIFIED) break; // what a typical caller writes
      }
    }
    await eventually(() => statuses.length === calls, 5000, 'every call to end');
    assert.deepEqual(statuses.map((s) => s.details), Array(calls).fill('OK'));

    // Leaving before the final message still cancels the call (and the work it asked for).
    statuses.length = 0;
    for await (const m of h.client.generate(longGeneration(50))) {
      assert.equal(m.finishReason, FinishReason.FINISH_REASON_UNSPECIFIED);
      break;
    }
    await eventually(() => statuses.length === 1, 5000, 'the early exit to end the call');
    assert.match(statuses[0]!.details, /cancel/i);
  } finally {
    await h.close();
  }
});
