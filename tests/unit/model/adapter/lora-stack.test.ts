import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { type Adapter, disposeAdapter } from '../../../../src/model/adapter.js';
import { initLoraAdapter } from '../../../../src/model/adapter-init.js';
import { forward, type ForwardInput } from '../../../../src/model/gpt.js';
import { disposeWeights, type GptWeights } from '../../../../src/model/gpt-weights.js';
import { groupedLoraDelta, loraDelta, type LoraTarget, type LoraWeights, type RowSegment } from '../../../../src/model/lora.js';
import { LoraStackCache, stackedLoraDelta } from '../../../../src/model/lora-stack.js';
import { testBackend, TINY, tinyWeights } from '../../../helpers/tiny-model.js';
import { maxAbsDiff, take } from './peft-reference.js';

const ALL: LoraTarget[] = ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'];
let base: GptWeights;
let adapters: (Adapter & { kind: 'lora' })[];
let loras: LoraWeights[];

before(async () => {
  await testBackend();
  base = tinyWeights(TINY, 71);
  // Eight adapters of different ranks, scales (one rsLoRA) and targets: some adapt only c_attn.
  adapters = Array.from({ length: 8 }, (_, i) =>
    initLoraAdapter(
      TINY,
      { r: 2 + i, loraAlpha: 3 + 2 * i, loraDropout: 0, targetModules: i % 3 === 2 ? ['attn.c_attn'] : ALL, useRslora: i === 5 },
      { seed: 100 + i, init: false },
    ),
  );
  loras = adapters.map((a) => a.lora);
});

after(() => {
  adapters.forEach(disposeAdapter);
  disposeWeights(base);
});

/** Rows of every adapter, base rows between them and a gap at the end (rows outside every segment). */
function mixedSegments(): { segments: RowSegment[]; rows: number } {
  const segments: RowSegment[] = [];
  let row = 0;
  loras.forEach((lora, i) => {
    segments.push({ start: row, count: 1 + (i % 3), lora });
    row += 1 + (i % 3);
    if (i % 4 === 1) segments.push({ start: row++, count: 1 });
  });
  return { segments, rows: row + 2 };
}

/** Runs `f` in a tidy scope and reads its delta back (the scope frees the intermediates). */
async function delta(f: () => tf.Tensor2D | null): Promise<Float32Array> {
  return take(
    tf.tidy(() => {
      const t = f();
      assert.ok(t, 'a delta');
      return t;
    }),
  );
}

for (const tokensPerRow of [1, 3]) {
  test(`stacked delta equals the per-adapter delta on every module, ${tokensPerRow} token(s) per row`, async () => {
    const { segments, rows } = mixedSegments();
    const cache = new LoraStackCache();
    for (const [i, key] of ['0.attn.c_attn', '1.attn.c_proj', '0.mlp.c_fc', '1.mlp.c_proj'].entries()) {
      const inDim = key.endsWith('mlp.c_proj') ? 4 * TINY.nEmbd : TINY.nEmbd;
      const outDim = key.endsWith('c_attn') ? 3 * TINY.nEmbd : key.endsWith('c_fc') ? 4 * TINY.nEmbd : TINY.nEmbd;
      const x = tf.randomNormal([rows * tokensPerRow, inDim], 0, 1, 'float32', 7 + i) as tf.Tensor2D;
      const before = tf.memory().numTensors;
      const cachedBefore = cache.numTensors;
      const want = await delta(() => groupedLoraDelta(x, key, segments, tokensPerRow, outDim));
      const uncached = await delta(() => stackedLoraDelta(x, key, segments, tokensPerRow));
      // Twice through the cache: built, then reused.
      const first = await delta(() => stackedLoraDelta(x, key, segments, tokensPerRow, cache));
      const held = tf.memory().numTensors;
      const again = await delta(() => loraDelta(x, key, segments, tokensPerRow, outDim, undefined, cache));
      assert.equal(tf.memory().numTensors, held, 'a second step reuses the stacked weights and mask');
      assert.equal(held - before, cache.numTensors - cachedBefore, 'the cache holds its stacked weights and mask; nothing else stays');
      for (const got of [uncached, first, again]) {
        const diff = maxAbsDiff(got, want);
        assert.ok(diff < 1e-5, `${key}: max |stacked - grouped| = ${diff}`);
      }
      // Not vacuous: base rows get zero, adapted rows do not.
      const baseRow = segments.find((s) => !s.lora)!.start;
      assert.equal(Math.max(...want.subarray(baseRow * tokensPerRow * outDim, (baseRow + 1) * tokensPerRow * outDim).map(Math.abs)), 0);
      assert.ok(Math.max(...want.map(Math.abs)) > 1e-3);
      x.dispose();
    }
    cache.dispose();
  });
}

test('a forward pass with stacked adapters (cached across steps) equals the grouped one and each row alone', async () => {
  const { segments, rows } = mixedSegments();
  const T = 2;
  const input: ForwardInput = {
    batch: rows,
    length: T,
    ids: Int32Array.from({ length: rows * T }, (_, i) => (i * 37) % TINY.vocabSize),
    positions: Int32Array.from({ length: rows * T }, (_, i) => i % T),
    valid: new Uint8Array(rows * T).fill(1),
  };
  const start = tf.memory().numTensors;
  const cache = new LoraStackCache();
  const stacked = await take(forward(TINY, base, input, { segments, loraStacks: cache }));
  const stackedAgain = await take(forward(TINY, base, input, { segments, loraStacks: cache }));
  // Grouped: every segment alone (one segment spanning its rows uses the per-adapter path).
  const V = TINY.vocabSize;
  for (const s of segments) {
    for (let r = s.start; r < s.start + s.count; r++) {
      const one: ForwardInput = { batch: 1, length: T, ids: input.ids.slice(r * T, r * T + T), positions: input.positions.slice(r * T, r * T + T), valid: new Uint8Array(T).fill(1) };
      const alone = await take(forward(TINY, base, one, s.lora ? { segments: [{ start: 0, count: 1, lora: s.lora }] } : {}));
      for (const got of [stacked, stackedAgain]) {
        const diff = maxAbsDiff(got.subarray(r * T * V, (r + 1) * T * V), alone);
        assert.ok(diff < 1e-5, `row ${r}: max |stacked - alone| = ${diff}`);
      }
    }
  }
  assert.ok(cache.numTensors > 0);
  cache.dispose();
  assert.equal(tf.memory().numTensors, start, 'the cache frees what it made; forward frees its intermediates');
});

test('the cache reuses a stack for a subset, drops stacks of freed adapters, and rebuilds masks when rows change', async () => {
  const cache = new LoraStackCache();
  const x = tf.randomNormal([4, TINY.nEmbd], 0, 1, 'float32', 3) as tf.Tensor2D;
  const key = '0.attn.c_attn';
  const outDim = 3 * TINY.nEmbd;
  const run = async (segments: RowSegment[]) => {
    const got = await delta(() => stackedLoraDelta(x, key, segments, 1, cache));
    const want = await delta(() => groupedLoraDelta(x, key, segments, 1, outDim));
    assert.ok(maxAbsDiff(got, want) < 1e-5);
  };
  await run([{ start: 0, count: 2, lora: loras[0] }, { start: 2, count: 2, lora: loras[1] }]);
  const afterFirst = cache.numTensors;
  // A subset on another layout: same stacked weights, a new mask only.
  await run([{ start: 0, count: 1, lora: loras[1] }, { start: 1, count: 3 }]);
  assert.equal(cache.numTensors, afterFirst);
  // A new adapter: a second stack (holding the first one's adapters as well).
  const extra = initLoraAdapter(TINY, { r: 4, loraAlpha: 8, loraDropout: 0, targetModules: ALL, useRslora: false }, { seed: 999, init: false });
  await run([{ start: 0, count: 2, lora: loras[0] }, { start: 2, count: 2, lora: extra.lora }]);
  assert.ok(cache.numTensors > afterFirst);
  const withExtra = cache.numTensors;
  // Freed (evicted) adapter: its stack goes at the next lookup; results stay right.
  disposeAdapter(extra);
  await run([{ start: 0, count: 2, lora: loras[0] }, { start: 2, count: 2, lora: loras[1] }]);
  assert.ok(cache.numTensors < withExtra);
  const before = tf.memory().numTensors;
  const held = cache.numTensors;
  cache.dispose();
  assert.equal(tf.memory().numTensors, before - held);
  x.dispose();
});
