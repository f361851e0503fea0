import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createEngine } from '../../../src/engine/create-engine.js';
import type { Engine, ResponseFormat } from '../../../src/engine/engine-api.js';
import { GrammarConstraint, liveGrammarMatchers } from '../../../src/model/generation/grammar-constraint.js';
import { collect, genParams, greedy, silentLog, summary, tempDir, testConfig, tinyModelWithTokenizer } from './engine-fixture.js';

let engine: Engine;

before(async () => {
  const config = await testConfig(await tinyModelWithTokenizer(), await tempDir(), { maxBatchSize: 8, maxQueue: 8 });
  // On this thread, so the test sees the matchers where they live.
  engine = await createEngine(config, { log: silentLog, threads: false });
});

after(() => engine.drain(0));

const FORMAT: ResponseFormat = {
  type: 'json_schema',
  schema: { type: 'object', properties: { a: { type: 'boolean' }, b: { enum: ['x', 'y'] } }, required: ['a', 'b'], additionalProperties: false },
};
const params = (seed: number, maxNewTokens = 40) => genParams('x', { sampling: greedy(maxNewTokens, { temperature: 1, seed, responseFormat: FORMAT }) });

test('the engine generates JSON under sampling.responseFormat, finishing with eos', async () => {
  for (const seed of [1, 2, 3]) {
    const { text, last } = summary(await collect(engine, params(seed)));
    assert.equal(last.finish?.reason, 'eos');
    const v = JSON.parse(text) as { a: unknown; b: unknown };
    assert.equal(typeof v.a, 'boolean');
    assert.ok(v.b === 'x' || v.b === 'y', text);
  }
  assert.equal(liveGrammarMatchers(), 0);
});

test('matchers are freed when requests finish, are cancelled, are abandoned or fail', async () => {
  // Finish (eos, length) while others run beside them.
  await Promise.all([collect(engine, params(1)), collect(engine, params(2, 4))]);
  assert.equal(liveGrammarMatchers(), 0);

  // Cancelled through the signal after the first chunk.
  const abort = new AbortController();
  const chunks = [];
  for await (const c of engine.generate(params(3), abort.signal)) {
    chunks.push(c);
    if (chunks.length === 1) abort.abort();
  }
  assert.equal(chunks.at(-1)?.finish?.reason, 'cancelled');

  // The consumer stops reading: the request leaves at the next step.
  for await (const _ of engine.generate(params(4), new AbortController().signal)) break;
  const deadline = Date.now() + 2000;
  while (liveGrammarMatchers() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assert.equal(liveGrammarMatchers(), 0);
});

test('a failing decode step frees the matchers of the failed lane', async () => {
  const fresh = await createEngine(await testConfig(await tinyModelWithTokenizer(), await tempDir()), { log: silentLog, threads: false });
  const prepare = GrammarConstraint.prototype.prepare;
  let calls = 0;
  GrammarConstraint.prototype.prepare = async function (this: GrammarConstraint) {
    if (++calls === 3) throw new Error('injected mask failure');
    return prepare.call(this);
  };
  try {
    await assert.rejects(Promise.all([collect(fresh, params(5)), collect(fresh, params(6))]), /injected mask failure|internal/i);
    assert.equal(liveGrammarMatchers(), 0);
    // The backend is not marked faulty: the next request is served.
    const { last } = summary(await collect(fresh, params(7)));
    assert.equal(last.finish?.reason, 'eos');
    assert.equal(liveGrammarMatchers(), 0);
  } finally {
    GrammarConstraint.prototype.prepare = prepare;
    await fresh.drain(0);
  }
});
