import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs';
import { forward, type ForwardInput } from '../../../src/model/gpt.js';
import { createKvCache, type DecodeCache, KvCache, type KvCacheKind, pagedCacheApplies } from '../../../src/model/kv-cache.js';
import { PagedKvCache } from '../../../src/model/paged-kv-cache.js';
import { kvArenaFor, PAGE_TOKENS } from '../../../src/model/kernels/kv-arena.js';
import { attentionHeads } from '../../../src/model/attention-heads.js';
import { disposeWeights, type GptWeights } from '../../../src/model/gpt-weights.js';
import { testBackend, TINY, tinyWeights } from '../../helpers/tiny-model.js';

/** Real tokens a row of either cache holds: the paged cache counts them; the tensor cache's validity mask says. */
const heldTokens = (cache: DecodeCache, row: number): number =>
  cache instanceof PagedKvCache ? cache.tokens(row) : cache.valid[row]!.reduce((n, v) => n + v, 0);

before(async () => {
  await testBackend();
});

const arena = () => kvArenaFor(attentionHeads(TINY), TINY.nPositions);

/** Rows of different lengths, left-padded to the longest, starting at `starts[b]`. */
function batchInput(rows: number[][], starts: number[] = rows.map(() => 0)): ForwardInput {
  const length = Math.max(...rows.map((r) => r.length));
  const n = rows.length * length;
  const input: ForwardInput = { batch: rows.length, length, ids: new Int32Array(n), positions: new Int32Array(n), valid: new Uint8Array(n) };
  rows.forEach((ids, b) => {
    const pad = length - ids.length;
    ids.forEach((id, j) => {
      input.ids[b * length + pad + j] = id;
      input.positions[b * length + pad + j] = starts[b] + j;
      input.valid[b * length + pad + j] = 1;
    });
  });
  return input;
}

async function run(weights: GptWeights, input: ForwardInput, cache?: DecodeCache): Promise<Float32Array> {
  const logits = forward(TINY, weights, input, { cache, output: 'last' });
  const data = (await logits.data()) as Float32Array;
  logits.dispose();
  return data;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const ids = (n: number, seed: number) => Array.from({ length: n }, (_, i) => (i * 37 + seed * 11) % TINY.vocabSize);

test('the committed attention kernel is the assembled attention.wat (node scripts/build-kernels.mjs --check)', () => {
  execFileSync(process.execPath, ['scripts/build-kernels.mjs', '--check'], { stdio: 'pipe' });
});

test('auto picks pages on host backends for heads of a multiple of 8 floats, tensors otherwise', () => {
  const host = ['wasm', 'cpu'].includes(tf.getBackend());
  assert.equal(pagedCacheApplies(TINY), host, 'TINY: 4 heads of 8, on a host backend');
  const odd = { ...TINY, nEmbd: 36, nHead: 3 };
  assert.equal(pagedCacheApplies(odd), false, 'heads of 12 floats');
  assert.ok(createKvCache(odd, 1) instanceof KvCache);
});

test('decoding past several pages gives the logits of a full forward pass, with either cache', async () => {
  const weights = tinyWeights(TINY, 5);
  const seq = ids(3 * PAGE_TOKENS + 5, 1);
  const expected: number[][] = [];
  for (let t = 8; t <= seq.length; t++) expected.push(Array.from(await run(weights, batchInput([seq.slice(0, t)]))));
  for (const kind of ['paged', 'tensor'] as KvCacheKind[]) {
    const cache = createKvCache(TINY, 1, kind);
    assert.equal(cache instanceof PagedKvCache, kind === 'paged');
    const got = [Array.from(await run(weights, batchInput([seq.slice(0, 8)]), cache))];
    for (let t = 8; t < seq.length; t++) got.push(Array.from(await run(weights, batchInput([[seq[t]]], [t]), cache)));
    cache.dispose();
    assert.ok(maxAbsDiff(got.flat(), expected.flat()) < 1e-4, `${kind}: max diff ${maxAbsDiff(got.flat(), expected.flat())}`);
  }
  disposeWeights(weights);
});

test('a left-padded batch decodes on pages as on the tensor cache, rows leave and regroup, and every page comes back', async () => {
  const weights = tinyWeights(TINY, 6);
  const prompts = [ids(3, 1), ids(20, 2), ids(9, 3)];
  const before = arena().pagesInUse;
  const tensorsBefore = tf.memory().numTensors;
  const out: Record<string, number[]> = {};
  for (const kind of ['paged', 'tensor'] as KvCacheKind[]) {
    let cache = createKvCache(TINY, 3, kind);
    const logits: number[] = Array.from(await run(weights, batchInput(prompts), cache));
    let rows = prompts.map((p) => p.length);
    for (let step = 0; step < 24; step++) {
      if (step === 10) {
        // Row 0 leaves, the others swap places (select, then free the old cache).
        const next = cache.select([2, 1]);
        cache.dispose();
        cache = next;
        rows = [rows[2], rows[1]];
      }
      const tokens = rows.map((_, b) => [(step * 7 + b) % TINY.vocabSize]);
      logits.push(...(await run(weights, batchInput(tokens, rows), cache)));
      rows = rows.map((n) => n + 1);
    }
    assert.deepEqual(rows.map((_, b) => heldTokens(cache, b)), rows);
    cache.dispose();
    out[kind] = logits;
  }
  assert.ok(maxAbsDiff(out.paged, out.tensor) < 1e-4, `max diff ${maxAbsDiff(out.paged, out.tensor)}`);
  assert.equal(arena().pagesInUse, before, 'pages in use after dispose');
  assert.equal(tf.memory().numTensors, tensorsBefore, 'tensors left behind');
  disposeWeights(weights);
});

test('a row shared by two caches is copied on write: appending to one leaves the other as it was', async () => {
  const weights = tinyWeights(TINY, 7);
  const a = createKvCache(TINY, 2, 'paged');
  await run(weights, batchInput([ids(5, 1), ids(18, 2)]), a);
  const b = a.select([1]);
  // Both caches continue row "18 tokens" with different tokens.
  const fromA = await run(weights, batchInput([[1], [2]], [5, 18]), a);
  const fromB = await run(weights, batchInput([[3]], [18]), b);
  const alone = createKvCache(TINY, 1, 'paged');
  await run(weights, batchInput([ids(18, 2)]), alone);
  const expectB = await run(weights, batchInput([[3]], [18]), alone);
  const fresh = createKvCache(TINY, 1, 'paged');
  await run(weights, batchInput([ids(18, 2)]), fresh);
  const expectA = await run(weights, batchInput([[2]], [18]), fresh);
  const V = TINY.vocabSize;
  assert.ok(maxAbsDiff(fromB, expectB) < 1e-5);
  assert.ok(maxAbsDiff(fromA.subarray(V, 2 * V), expectA) < 1e-5);
  assert.equal(heldTokens(a, 1), 19);
  assert.equal(heldTokens(b, 0), 19);
  const before = arena().pagesInUse;
  for (const c of [a, b, alone, fresh]) c.dispose();
  assert.ok(arena().pagesInUse < before);
  disposeWeights(weights);
});

test('a row longer than the context fails with a clear error and pages stay accounted for', async () => {
  const weights = tinyWeights(TINY, 8);
  const before = arena().pagesInUse;
  const cache = createKvCache(TINY, 1, 'paged');
  await run(weights, batchInput([ids(TINY.nPositions, 1)]), cache);
  const tensors = tf.memory().numTensors;
  assert.throws(() => forward(TINY, weights, batchInput([[1]], [TINY.nPositions - 1]), { cache }), /exceeds the context of 64 tokens/);
  assert.equal(tf.memory().numTensors, tensors, 'a failed forward pass leaves no tensor');
  assert.equal(heldTokens(cache, 0), TINY.nPositions);
  cache.dispose();
  assert.equal(arena().pagesInUse, before);
  disposeWeights(weights);
});
