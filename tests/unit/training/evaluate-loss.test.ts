import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../../src/common/rng.js';
import { disposeAdapter } from '../../../src/model/adapter.js';
import { forward } from '../../../src/model/gpt.js';
import { disposeWeights, type GptWeights } from '../../../src/model/gpt-weights.js';
import { packSequences } from '../../../src/training/data/packing.js';
import type { TokenizedExample } from '../../../src/training/data/tokenize-example.js';
import { evaluateLoss } from '../../../src/training/evaluate-loss.js';
import { createTrainable } from '../../../src/training/trainable.js';
import { testBackend, TINY, tinyWeights } from '../../helpers/tiny-model.js';

let weights: GptWeights;
before(async () => {
  await testBackend();
  weights = tinyWeights(TINY, 8);
});

const rng = new Rng(4);
const examples: TokenizedExample[] = [5, 9, 3, 12, 7].map((n, i) => ({
  line: i + 1,
  truncatedTokens: 0,
  ids: Int32Array.from({ length: n }, () => rng.int(256)),
  lossMask: Uint8Array.from({ length: n }, (_, t) => (t >= 2 ? 1 : 0)),
}));

/** Loss sum, argmax hits and loss tokens of one sequence run alone, from full logits on the host. */
async function alone(ids: Int32Array, lossMask: Uint8Array): Promise<[number, number, number]> {
  const n = ids.length;
  const positions = Int32Array.from(ids, (_, i) => i);
  const logitsT = forward(TINY, weights, { batch: 1, length: n, ids, positions, valid: new Uint8Array(n).fill(1) });
  const logits = (await logitsT.array()) as number[][];
  logitsT.dispose();
  let loss = 0;
  let hits = 0;
  let tokens = 0;
  for (let t = 0; t + 1 < n; t++) {
    if (!lossMask[t + 1]) continue;
    const row = logits[t];
    const m = Math.max(...row);
    loss += m + Math.log(row.reduce((s, z) => s + Math.exp(z - m), 0)) - row[ids[t + 1]];
    if (row.indexOf(m) === ids[t + 1]) hits++;
    tokens++;
  }
  return [loss, hits, tokens];
}

test('loss, perplexity and token accuracy equal a per-sequence computation from full logits', async () => {
  let loss = 0;
  let hits = 0;
  let tokens = 0;
  for (const e of examples) {
    const [l, h, n] = await alone(e.ids, e.lossMask);
    loss += l;
    hits += h;
    tokens += n;
  }
  for (const batchSize of [1, 2, 8]) {
    const r = await evaluateLoss(TINY, weights, examples, { padId: 256, batchSize });
    assert.equal(r.tokens, tokens);
    assert.ok(Math.abs(r.loss - loss / tokens) < 1e-5, `batch ${batchSize}: ${r.loss} vs ${loss / tokens}`);
    assert.ok(Math.abs(r.perplexity - Math.exp(loss / tokens)) < 1e-3);
    assert.equal(r.tokenAccuracy, hits / tokens);
  }
});

test('packed sequences score exactly as their examples alone (attention and positions restart per example)', async () => {
  const packed = packSequences(examples, 40);
  assert.ok(packed.length < examples.length);
  const a = await evaluateLoss(TINY, weights, examples, { padId: 256 });
  const b = await evaluateLoss(TINY, weights, packed, { padId: 256 });
  assert.equal(a.tokens, b.tokens);
  assert.ok(Math.abs(a.loss - b.loss) < 1e-5, `${a.loss} vs ${b.loss}`);
});

test('an adapter changes the scores; a last_layers adapter equal to the base blocks does not', async () => {
  const base = await evaluateLoss(TINY, weights, examples, { padId: 256 });
  const lora = createTrainable(TINY, weights, { kind: 'lora', r: 2, alpha: 4, dropout: 0 }, { seed: 1 });
  lora.assign(lora.params.map((p) => Float32Array.from({ length: p.variable.size }, () => 0.2)));
  const adapted = await evaluateLoss(TINY, weights, examples, { padId: 256, adapter: lora.live });
  assert.ok(Math.abs(adapted.loss - base.loss) > 1e-3);
  lora.dispose();
  const copy = createTrainable(TINY, weights, { kind: 'last_layers', numLayers: 2 }, { seed: 1 });
  const adapter = copy.exportAdapter();
  copy.dispose();
  const same = await evaluateLoss(TINY, weights, examples, { padId: 256, adapter });
  disposeAdapter(adapter);
  assert.ok(Math.abs(same.loss - base.loss) < 1e-6);
});

test('no loss tokens is an InvalidArgument; nothing leaks', async () => {
  const before = tf.memory().numTensors;
  const none = [{ ids: Int32Array.from([1, 2, 3]), lossMask: new Uint8Array(3) }];
  await assert.rejects(evaluateLoss(TINY, weights, none, { padId: 256 }), /the evaluation set has no loss tokens/);
  await evaluateLoss(TINY, weights, examples, { padId: 256 });
  assert.equal(tf.memory().numTensors, before);
  disposeWeights(weights);
});
