import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cp } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { GentuneError } from '../../../src/common/errors.js';
import { createEngine } from '../../../src/engine/create-engine.js';
import type { Engine, GenerateChunk, GenerateParams } from '../../../src/engine/engine-api.js';
import { disposeAdapter } from '../../../src/model/adapter.js';
import { initLastLayersAdapter, initLoraAdapter } from '../../../src/model/adapter-init.js';
import { saveAdapter } from '../../../src/model/checkpoint/peft-adapter.js';
import { GptModel } from '../../../src/model/gpt-model.js';
import { isLlamaBlock } from '../../../src/model/gpt-weights.js';
import { TINY } from '../../helpers/tiny-model.js';
import { byteTokenizer } from '../../helpers/byte-tokenizer.js';
import { collect, ENGINE_MODES, type EngineMode, genParams, greedy, servingMemory, silentLog, summary, tempDir, testConfig, tinyModelWithTokenizer } from './engine-fixture.js';

/** The engine most tests use: createEngine's default, serving in a worker thread. */
let engine: Engine;
/** The same engine on this thread (`threads: false`), for the leak tests in both modes. */
let inProcess: Engine;
let modelDir: string;

/** Stores a LoRA adapter `lora@1` and a last_layers adapter `top@1` where the engine will find them. */
async function seedAdapters(dataDir: string): Promise<void> {
  const model = await GptModel.load(modelDir);
  // Scaled up so the adapter visibly changes greedy output.
  const lora = initLoraAdapter(TINY, { r: 4, loraAlpha: 64, loraDropout: 0, targetModules: ['attn.c_attn', 'mlp.c_fc'], useRslora: false }, { seed: 3, init: false, baseModel: model.name });
  await saveAdapter(join(dataDir, 'adapters', 'lora', '1'), lora, TINY);
  const top = initLastLayersAdapter(model.weights, 1, model.name);
  const block = top.blocks.get(1)!;
  assert.ok(!isLlamaBlock(block));
  const scaled = tf.mul(block.c_fc.weight, 4) as tf.Tensor2D;
  block.c_fc.weight.dispose();
  block.c_fc.weight = scaled;
  await saveAdapter(join(dataDir, 'adapters', 'top', '1'), top, TINY);
  disposeAdapter(lora);
  disposeAdapter(top);
  model.dispose();
}

before(async () => {
  modelDir = await tinyModelWithTokenizer();
  const dataDir = await tempDir();
  await seedAdapters(dataDir);
  const limits = { maxBatchSize: 8, maxQueue: 8, maxPromptTokens: 40 };
  engine = await createEngine(await testConfig(modelDir, dataDir, limits), { log: silentLog });
  const inProcessDir = await tempDir();
  await cp(join(dataDir, 'adapters'), join(inProcessDir, 'adapters'), { recursive: true });
  inProcess = await createEngine(await testConfig(modelDir, inProcessDir, limits), { log: silentLog, threads: false });
});

after(async () => {
  await engine.drain(0);
  await inProcess.drain(0);
});

const engineIn = (mode: EngineMode): Engine => (mode === 'threaded' ? engine : inProcess);

function rejectsWith(code: string, pattern: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof GentuneError, String(err));
    assert.equal(err.code, code);
    assert.match(err.message, pattern);
    return true;
  };
}

test('streams text deltas with token ids; only the last chunk carries finish and usage', async () => {
  const chunks = await collect(engine, genParams('Hello, whale', { sampling: greedy(10, { maxNewTokens: 10 }) }));
  const { ids, text, last } = summary(chunks);
  assert.ok(chunks.slice(0, -1).every((c) => c.finish === undefined));
  assert.ok(last.finish);
  assert.equal(last.finish.reason, ids.length === 10 ? 'length' : 'eos');
  assert.equal(last.finish.adapter, '');
  const u = last.finish.usage;
  assert.equal(u.promptTokens, 'Hello, whale'.length);
  assert.equal(u.generatedTokens, ids.length);
  assert.ok(u.queueMs >= 0 && u.queueMs <= u.timeToFirstTokenMs && u.timeToFirstTokenMs <= u.totalMs);
  const tokenizer = byteTokenizer();
  assert.equal(text, tokenizer.decode(ids.filter((id) => id !== tokenizer.eosId)));
  assert.ok(engine.isReady());
  assert.equal(engine.info().model.nPositions, TINY.nPositions);
});

test('concurrent requests share the batch and produce exactly what each produces alone (greedy and seeded)', async () => {
  // Greedy output of a random tiny model is monotonous; seeded sampling varies
  // the tokens, and logprobs compare the distributions themselves.
  const sampled = (n: number, seed: number) => ({ ...greedy(n), temperature: 1, seed });
  const requests: GenerateParams[] = [
    genParams('a', { sampling: greedy(12) }),
    genParams('Call me Ishmael.', { sampling: sampled(6, 1) }),
    genParams('The whale', { sampling: sampled(9, 2), adapter: { name: 'lora' } }),
    genParams('xyz', { sampling: greedy(7), adapter: { name: 'top' } }),
    genParams('xyz', { sampling: sampled(7, 3), adapter: { name: 'lora', version: 1 } }),
    genParams('Starbuck', { sampling: sampled(10, 4), adapter: { name: 'top' } }),
  ].map((r) => ({ ...r, logprobs: true }));
  const alone: GenerateChunk[][] = [];
  for (const r of requests) alone.push(await collect(engine, r));
  const order: number[] = [];
  const together = await Promise.all(
    requests.map(async (r, i) => {
      const chunks: GenerateChunk[] = [];
      for await (const c of engine.generate(r, new AbortController().signal)) {
        chunks.push(c);
        order.push(i);
      }
      return chunks;
    }),
  );
  together.forEach((chunks, i) => {
    assert.deepEqual(summary(chunks).ids, summary(alone[i]).ids, `request ${i}`);
    const lps = (cs: GenerateChunk[]) => cs.flatMap((c) => c.logprobs ?? []).map((l) => l.logprob);
    lps(chunks).forEach((lp, j) => assert.ok(Math.abs(lp - lps(alone[i])[j]) < 1e-4, `request ${i} token ${j}`));
  });
  assert.deepEqual(together.map((c) => summary(c).last.finish!.adapter), ['', '', 'lora@1', 'top@1', 'lora@1', 'top@1']);
  // Interleaved output: they ran in one batch, not one after another.
  assert.notDeepEqual(order, [...order].sort((a, b) => a - b));
  // The adapters do change the model's distribution.
  const first = async (adapter: GenerateParams['adapter']) =>
    (await collect(engine, genParams('xyz', { sampling: greedy(1), adapter, logprobs: true })))[0].logprobs![0].logprob;
  const base = await first(null);
  assert.ok(Math.abs((await first({ name: 'lora' })) - base) > 1e-3);
  assert.ok(Math.abs((await first({ name: 'top' })) - base) > 1e-3);
});

test('a cancelled request leaves the batch with finish reason cancelled; the others are unaffected', async () => {
  const other = genParams('Moby Dick', { sampling: greedy(20) });
  const expected = summary(await collect(engine, other)).ids;
  const controller = new AbortController();
  const cancelled = (async () => {
    const chunks: GenerateChunk[] = [];
    for await (const c of engine.generate(genParams('Ahab', { sampling: greedy(40) }), controller.signal)) {
      chunks.push(c);
      if (chunks.length === 3) controller.abort(new Error('client went away'));
    }
    return chunks;
  })();
  const [mine, theirs] = await Promise.all([cancelled, collect(engine, other)]);
  const last = summary(mine).last;
  assert.equal(last.finish?.reason, 'cancelled');
  assert.ok(last.finish!.usage.generatedTokens >= 3 && last.finish!.usage.generatedTokens < 40);
  assert.deepEqual(summary(theirs).ids, expected);
});

for (const mode of ENGINE_MODES) {
  test(`a consumer that stops reading leaves the batch too, and its row's cache is freed (${mode})`, async () => {
    const e = engineIn(mode);
    const before = await servingMemory(e, mode);
    for await (const c of e.generate(genParams('Queequeg', { sampling: greedy(40) }), new AbortController().signal)) {
      if (c.tokenIds.length > 0) break;
    }
    // A request sent after the consumer left joins at a later step boundary,
    // where the loop drops the abandoned row first. Once that request has
    // ended, its KV pages and the abandoned row's are back, unless the
    // abandoned row still runs (it asked for 40 tokens, this one for 1).
    assert.equal(summary(await collect(e, genParams('Q', { sampling: greedy(1) }))).last.finish?.reason, 'length');
    assert.deepEqual(await servingMemory(e, mode), before);
  });
}

test('logprobs: one entry per token, the greedy token is the most likely alternative', async () => {
  const chunks = await collect(engine, genParams('Pequod', { sampling: greedy(5), logprobs: true, topLogprobs: 3 }));
  const withTokens = chunks.filter((c) => c.tokenIds.length > 0);
  assert.ok(withTokens.length > 0);
  for (const c of withTokens) {
    assert.equal(c.logprobs!.length, 1);
    const lp = c.logprobs![0];
    assert.equal(lp.tokenId, c.tokenIds[0]);
    assert.equal(lp.topLogprobs.length, 3);
    assert.equal(lp.topLogprobs[0].tokenId, lp.tokenId);
    assert.ok(Math.abs(lp.topLogprobs[0].logprob - lp.logprob) < 1e-4);
    assert.ok(lp.topLogprobs[0].logprob >= lp.topLogprobs[1].logprob && lp.topLogprobs[1].logprob >= lp.topLogprobs[2].logprob);
    assert.ok(lp.logprob <= 0);
  }
});

test('the engine checks prompt length, context length, token ids and the adapter', async () => {
  await assert.rejects(collect(engine, genParams('x'.repeat(41))), rejectsWith('INVALID_ARGUMENT', /`prompt` must be at most limits\.max_prompt_tokens \(--max-prompt-tokens\) 40 tokens, got 41/));
  await assert.rejects(collect(engine, genParams('x'.repeat(40), { sampling: greedy(25) })), rejectsWith('INVALID_ARGUMENT', /`max_new_tokens` 25 plus the prompt's 40 tokens exceeds the context length of 64/));
  await assert.rejects(collect(engine, genParams([1, 2, 999])), rejectsWith('INVALID_ARGUMENT', /`prompt_token_ids\[2\]` must be a token id in 0..256, got 999/));
  await assert.rejects(collect(engine, genParams('a', { adapter: { name: 'missing' } })), rejectsWith('NOT_FOUND', /`adapter` "missing"/));
  await assert.rejects(collect(engine, genParams('a', { adapter: { name: 'lora', version: 2 } })), rejectsWith('NOT_FOUND', /`adapter` "lora@2"/));
  // Token ids work as a prompt, and a full context ends with `length`.
  const last = summary(await collect(engine, genParams([72, 105], { sampling: greedy(3) }))).last;
  assert.equal(last.finish!.usage.promptTokens, 2);
});

for (const mode of ENGINE_MODES) {
  test(`the tensor count does not grow across requests (base, LoRA, last_layers, cancelled) (${mode})`, async () => {
    const e = engineIn(mode);
    const round = async () => {
      // Cancelled once its first chunk arrives, so it leaves the batch mid-generation.
      // Threaded, the abort reaches the worker some steps later (at most 13 in 100
      // rounds beside a busy loop): it asks for all 60 tokens the context leaves it.
      const controller = new AbortController();
      const cancelled = (async () => {
        const chunks: GenerateChunk[] = [];
        for await (const c of e.generate(genParams('four', { sampling: greedy(60) }), controller.signal)) {
          chunks.push(c);
          if (chunks.length === 1) controller.abort(new Error('client went away'));
        }
        return chunks;
      })();
      const [, , , four] = await Promise.all([
        collect(e, genParams('one', { sampling: greedy(6) })),
        collect(e, genParams('two', { sampling: greedy(6), adapter: { name: 'lora' } })),
        collect(e, genParams('three', { sampling: greedy(6), adapter: { name: 'top' } })),
        cancelled,
      ]);
      assert.equal(summary(four).last.finish?.reason, 'cancelled');
    };
    await round(); // adapters resident from here on
    const before = await servingMemory(e, mode);
    for (let i = 0; i < 3; i++) await round();
    assert.deepEqual(await servingMemory(e, mode), before);
  });
}

test('a full queue is ResourceExhausted; drain cancels what runs and refuses new work', async () => {
  const small = await createEngine(await testConfig(modelDir, await tempDir(), { maxBatchSize: 1, maxQueue: 0 }), { log: silentLog });
  const first = small.generate(genParams('long', { sampling: greedy(50) }), new AbortController().signal)[Symbol.asyncIterator]();
  await first.next(); // running: the only batch slot is taken
  await assert.rejects(collect(small, genParams('b')), rejectsWith('RESOURCE_EXHAUSTED', /limits\.max_queue \(--max-queue\) 0/));
  const rest: GenerateChunk[] = [];
  const reading = (async () => {
    for (let r = await first.next(); !r.done; r = await first.next()) rest.push(r.value);
  })();
  await small.drain(0);
  await reading;
  assert.equal(rest.at(-1)?.finish?.reason, 'cancelled');
  assert.equal(small.isReady(), false);
  await assert.rejects(collect(small, genParams('c')), rejectsWith('UNAVAILABLE', /shutting down/));
});
