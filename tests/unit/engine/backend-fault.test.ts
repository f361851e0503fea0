/**
 * A WebAssembly trap in the model (memory access out of bounds: the wasm heap
 * ran out, or a kernel read outside it) leaves the backend's memory in an
 * unknown state. The engine must fail every request with UNAVAILABLE naming
 * the cause, refuse new ones, and report not ready (health NOT_SERVING, so
 * Kubernetes restarts the pod), instead of serving garbage or crashing.
 * The trap here is a real one: the paged KV cache's arena is pointed at a
 * page table beyond its wasm memory, and the attention kernel reads it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { GentuneError } from '../../../src/common/errors.js';
import { createEngine } from '../../../src/engine/create-engine.js';
import type { Engine } from '../../../src/engine/engine-api.js';
import { kvArenaFor } from '../../../src/model/kernels/kv-arena.js';
import { attentionHeads } from '../../../src/model/attention-heads.js';
import { onHostBackend } from '../../../src/model/kernels/host-memory.js';
import { TINY } from '../../helpers/tiny-model.js';
import { collect, genParams, greedy, silentLog, tempDir, testConfig, tinyModelWithTokenizer } from './engine-fixture.js';

let engine: Engine;

before(async () => {
  engine = await createEngine(await testConfig(await tinyModelWithTokenizer(), await tempDir()), { log: silentLog, threads: false });
});

after(() => engine.drain(0));

const unavailable = (pattern: RegExp) => (err: unknown) => {
  assert.ok(err instanceof GentuneError, String(err));
  assert.equal(err.code, 'UNAVAILABLE');
  assert.match(err.message, pattern);
  return true;
};

test('a wasm trap fails the running requests with UNAVAILABLE, refuses new ones and reports not ready', async (t) => {
  if (!onHostBackend()) return t.skip('the paged KV cache runs on host backends only');
  // A healthy start.
  assert.equal(engine.isReady(), true);
  assert.ok((await collect(engine, genParams('Hello', { sampling: greedy(4) }))).length > 0);
  // A page table past the end of the arena's memory: the attention kernel traps reading it.
  const arena = kvArenaFor(attentionHeads(TINY), TINY.nPositions) as unknown as { tableOff: number };
  arena.tableOff = 0x7ff00000;
  const runs = ['Call me Ishmael', 'Some years ago'].map((p) => collect(engine, genParams(p, { sampling: greedy(6) })));
  for (const run of runs) await assert.rejects(run, unavailable(/model backend failed \(memory access out of bounds\); restart the server/));
  assert.equal(engine.isReady(), false, 'not ready after the trap');
  await assert.rejects(collect(engine, genParams('again', { sampling: greedy(2) })), unavailable(/restart the server/));
});
