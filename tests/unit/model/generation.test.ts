import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { GptModel } from '../../../src/model/gpt-model.js';
import { generateText, generate } from '../../../src/model/generation/generate.js';
import type { SamplingParams } from '../../../src/model/generation/sampling-params.js';
import { DEFAULT_SAMPLING } from '../../helpers/default-sampling.js';
import { forward } from '../../../src/model/gpt.js';
import { logSoftmaxAt } from '../../../src/model/generation/logits-processors.js';
import { GenerationSequence } from '../../../src/model/generation/generation-sequence.js';
import { testBackend, TINY, tinyWeights } from '../../helpers/tiny-model.js';
import { byteTokenizer } from '../../helpers/byte-tokenizer.js';

let model: GptModel;

before(async () => {
  await testBackend();
  model = new GptModel(TINY, tinyWeights(TINY, 11), byteTokenizer(), 'tiny');
});

after(() => model.dispose());

const greedy = (over: Partial<SamplingParams> = {}): SamplingParams => ({ ...DEFAULT_SAMPLING, temperature: 0, maxNewTokens: 12, stopAtEos: false, ...over });
const enc = (s: string) => model.tokenizer.encode(s);

test('greedy decoding is deterministic and matches argmax of full forward passes', async () => {
  const prompt = enc('Hello');
  const [a] = await generateText(model, [{ promptIds: prompt, params: greedy() }]);
  const [b] = await generateText(model, [{ promptIds: prompt, params: greedy() }]);
  assert.deepEqual(a.ids, b.ids);
  assert.equal(a.ids.length, 12);
  assert.equal(a.finishReason, 'length');
  // Reference: no cache, the whole sequence re-run each step.
  const ids = [...prompt];
  for (let i = 0; i < 12; i++) {
    const logits = forward(model.config, model.weights, {
      batch: 1,
      length: ids.length,
      ids: Int32Array.from(ids),
      positions: Int32Array.from(ids, (_, j) => j),
      valid: new Uint8Array(ids.length).fill(1),
    }, { output: 'last' });
    const row = await logits.data();
    logits.dispose();
    let best = 0;
    for (let v = 1; v < row.length; v++) if (row[v] > row[best]) best = v;
    ids.push(best);
  }
  assert.deepEqual(a.ids, ids.slice(prompt.length));
});

test('batched generation equals one-at-a-time generation (prompts of different lengths)', async () => {
  const prompts = ['a', 'The whale', 'Call me Ishmael.', 'xyz'].map(enc);
  const seeds = [1, 2, 3, 4];
  const params = (i: number): SamplingParams => ({ ...DEFAULT_SAMPLING, maxNewTokens: 10 + i, seed: seeds[i], topK: 40, stopAtEos: false });
  const together = await generateText(model, prompts.map((p, i) => ({ promptIds: p, params: params(i) })));
  for (const [i, p] of prompts.entries()) {
    const [alone] = await generateText(model, [{ promptIds: p, params: params(i) }]);
    assert.deepEqual(together[i].ids, alone.ids, `prompt ${i}`);
  }
});

test('same seed gives the same text; another seed another text', async () => {
  const p = { ...DEFAULT_SAMPLING, maxNewTokens: 20, seed: 5, stopAtEos: false };
  const [a] = await generateText(model, [{ promptIds: enc('Once'), params: p }]);
  const [b] = await generateText(model, [{ promptIds: enc('Once'), params: p }]);
  const [c] = await generateText(model, [{ promptIds: enc('Once'), params: { ...p, seed: 6 } }]);
  assert.equal(a.text, b.text);
  assert.notDeepEqual(a.ids, c.ids);
});

test('stop sequences cut the text before the stop and end with stop_sequence', async () => {
  const [free] = await generateText(model, [{ promptIds: enc('Hi'), params: greedy({ maxNewTokens: 20 }) }]);
  const stop = free.text.slice(3, 5);
  assert.ok(stop.length === 2);
  const [cut] = await generateText(model, [{ promptIds: enc('Hi'), params: greedy({ maxNewTokens: 20, stop: [stop] }) }]);
  assert.equal(cut.finishReason, 'stop_sequence');
  assert.equal(cut.text, free.text.slice(0, free.text.indexOf(stop)));
});

test('EOS ends a sequence with reason eos; multi-byte characters stream whole', () => {
  const seq = new GenerationSequence(enc('x'), greedy({ stopAtEos: true }), model.tokenizer);
  const pick = (id: number) => {
    const row = new Float32Array(TINY.vocabSize);
    row[id] = 10;
    return seq.accept(row);
  };
  const euro = [...Buffer.from('€')];
  assert.deepEqual([pick(euro[0]).text, pick(euro[1]).text, pick(euro[2]).text], ['', '', '€']);
  const end = pick(model.tokenizer.eosId);
  assert.equal(end.finishReason, 'eos');
  assert.equal(end.text, '');
  assert.ok(seq.finished);
});

test('eosIds (a model\'s EOS ids, a chat template\'s end of turn) each end a sequence with reason eos; other ids do not', () => {
  const pick = (seq: GenerationSequence, id: number) => {
    const row = new Float32Array(TINY.vocabSize);
    row[id] = 10;
    return seq.accept(row);
  };
  const endOfTurn = 'q'.charCodeAt(0);
  for (const id of [endOfTurn, model.tokenizer.eosId]) {
    const seq = new GenerationSequence(enc('x'), greedy({ stopAtEos: true, eosIds: [endOfTurn, model.tokenizer.eosId] }), model.tokenizer);
    const a = pick(seq, 'a'.charCodeAt(0));
    assert.deepEqual([a.finishReason, a.text], [undefined, 'a']);
    const end = pick(seq, id);
    assert.equal(end.finishReason, 'eos', `id ${id}`);
    assert.equal(end.text, '', 'the end-of-turn token is not in the text');
  }
  // Without eosIds only the tokenizer's EOS ends it.
  const plain = new GenerationSequence(enc('x'), greedy({ stopAtEos: true }), model.tokenizer);
  assert.equal(pick(plain, endOfTurn).finishReason, undefined);
});

test('logprobs are log-softmax of the raw logits of the chosen token', async () => {
  const prompt = enc('Log');
  const events = [];
  for await (const e of generate(model, [{ promptIds: prompt, params: greedy({ maxNewTokens: 1, logprobs: true }) }])) events.push(e);
  const logits = forward(model.config, model.weights, {
    batch: 1, length: prompt.length, ids: Int32Array.from(prompt), positions: Int32Array.from(prompt, (_, j) => j), valid: new Uint8Array(prompt.length).fill(1),
  }, { output: 'last' });
  const row = (await logits.data()) as Float32Array;
  logits.dispose();
  assert.ok(Math.abs(events[0].logprob! - logSoftmaxAt(row, events[0].tokenId)) < 1e-6);
  assert.ok(events[0].logprob! <= 0);
});

test('100 generations leave the tensor count unchanged', async () => {
  await generateText(model, [{ promptIds: enc('warm'), params: greedy({ maxNewTokens: 2 }) }]);
  const before = tf.memory().numTensors;
  for (let i = 0; i < 100; i++) {
    const batch = i % 4 === 0 ? ['ab', 'cde'] : ['q'];
    await generateText(model, batch.map((s, j) => ({ promptIds: enc(s), params: { ...DEFAULT_SAMPLING, maxNewTokens: 3 + j, seed: i } })));
  }
  assert.equal(tf.memory().numTensors, before);
});
