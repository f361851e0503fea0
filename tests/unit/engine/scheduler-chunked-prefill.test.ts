// Chunked prefill (issue "Model manager and scheduler", item 1): a prompt is
// prefilled in chunks of at most --prefill-chunk columns into a cache of its
// own, interleaved with the running batch's decode steps, and gives exactly
// what one whole-prompt prefill gives.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { createEngine } from '../../../src/engine/create-engine.js';
import type { Engine, GenerateChunk } from '../../../src/engine/engine-api.js';
import type { EngineMetrics } from '../../../src/engine/engine-metrics.js';
import { type Adapter, disposeAdapter } from '../../../src/model/adapter.js';
import { initLoraAdapter } from '../../../src/model/adapter-init.js';
import { kvCacheMemory } from '../../../src/model/kernels/kv-arena.js';
import { BatchDecoder } from '../../../src/model/generation/batch-decoder.js';
import { GenerationSequence } from '../../../src/model/generation/generation-sequence.js';
import type { SamplingParams } from '../../../src/model/generation/sampling-params.js';
import { DEFAULT_SAMPLING } from '../../helpers/default-sampling.js';
import type { GptConfig } from '../../../src/model/gpt-config.js';
import { GptModel } from '../../../src/model/gpt-model.js';
import { saveTokenizer } from '../../../src/model/tokenizer/load-tokenizer.js';
import { byteTokenizer } from '../../helpers/byte-tokenizer.js';
import { testBackend, TINY, tinyModelFolder, tinyWeights } from '../../helpers/tiny-model.js';
import { collect, genParams, greedy, silentLog, summary, tempDir, testConfig } from './engine-fixture.js';

/** TINY with a context long enough for a prompt that takes a while to prefill. */
const LONG_CONTEXT: GptConfig = { ...TINY, nPositions: 1024 };

let model: GptModel;
let lora: Adapter & { kind: 'lora' };
let modelDir: string;

before(async () => {
  await testBackend();
  model = new GptModel(LONG_CONTEXT, tinyWeights(LONG_CONTEXT, 5), byteTokenizer(), 'tiny');
  lora = initLoraAdapter(LONG_CONTEXT, { r: 4, loraAlpha: 32, loraDropout: 0, targetModules: ['attn.c_attn', 'mlp.c_fc'], useRslora: false }, { seed: 9, init: false });
  modelDir = await tinyModelFolder(LONG_CONTEXT, 5);
  await saveTokenizer(modelDir, byteTokenizer());
});

after(() => {
  disposeAdapter(lora);
  model.dispose();
});

const sampling = (over: Partial<SamplingParams> = {}): SamplingParams => ({ ...DEFAULT_SAMPLING, temperature: 0, maxNewTokens: 12, stopAtEos: false, logprobs: true, ...over });
const ids = (n: number, salt: number) => Array.from({ length: n }, (_, i) => (i * 31 + salt * 17) % 256);

/** Prompts of mixed lengths, some with the LoRA adapter, some sampled: ids and logprobs of each. */
async function decodeAll(chunk: number): Promise<{ ids: number[]; logprobs: number[] }[]> {
  const seqs = [ids(3, 1), ids(70, 2), ids(17, 3), ids(130, 4), ids(1, 5)].map(
    (p, i) =>
      new GenerationSequence(
        p,
        sampling(i === 2 ? { temperature: 1, seed: 7 } : {}),
        model.tokenizer,
        i % 2 === 1 ? { key: 'lora@1', lora: lora.lora } : { key: '' },
      ),
  );
  const decoder = new BatchDecoder(model);
  const out = seqs.map(() => ({ ids: [] as number[], logprobs: [] as number[] }));
  const record = (i: number, o: { tokenId: number; logprob?: number }) => {
    out[i].ids.push(o.tokenId);
    out[i].logprobs.push(o.logprob!);
  };
  (await decoder.add(seqs, chunk)).forEach((o, i) => record(i, o));
  for (let s = 0; s < 11; s++) {
    const rows = decoder.rows;
    (await decoder.step()).forEach((o, b) => record(seqs.indexOf(rows[b]), o));
  }
  decoder.dispose();
  return out;
}

test('chunked prefill gives the tokens (and logprobs) of one whole-prompt prefill, at any chunk size', async () => {
  const before = tf.memory().numTensors;
  const whole = await decodeAll(Infinity);
  for (const chunk of [1, 7, 64]) {
    const chunked = await decodeAll(chunk);
    chunked.forEach((c, i) => {
      assert.deepEqual(c.ids, whole[i].ids, `chunk ${chunk}, sequence ${i}`);
      c.logprobs.forEach((lp, j) => assert.ok(Math.abs(lp - whole[i].logprobs[j]) < 1e-4, `chunk ${chunk}, sequence ${i}, token ${j}: ${lp} vs ${whole[i].logprobs[j]}`));
    });
  }
  assert.equal(tf.memory().numTensors, before);
});

test('a prefill group runs one chunk per call, merges into a running batch, and drops rows cancelled midway', async () => {
  const before = tf.memory().numTensors;
  const decoder = new BatchDecoder(model);
  const running = new GenerationSequence(ids(5, 1), sampling({ maxNewTokens: 40 }), model.tokenizer);
  await decoder.add([running]);
  const stays = new GenerationSequence(ids(50, 2), sampling(), model.tokenizer);
  const leaves = new GenerationSequence(ids(45, 3), sampling(), model.tokenizer);
  const group = decoder.prefill([stays, leaves]);
  assert.equal(group.columns, 50);
  assert.equal(await group.next(16), null);
  assert.equal(await decoder.step().then((o) => o.length), 1);
  leaves.cancel();
  assert.deepEqual(group.removeFinished(), [leaves]);
  assert.equal(await group.next(16), null);
  assert.equal(await group.next(16), null);
  const outs = await group.next(16);
  assert.equal(outs?.length, 1);
  assert.ok(group.complete);
  decoder.merge(group);
  assert.deepEqual(decoder.rows, [running, stays]);
  // The merged row continues exactly as if it had been prefilled alone.
  const alone = new BatchDecoder(model);
  const ref = new GenerationSequence(ids(50, 2), sampling(), model.tokenizer);
  const [first] = await alone.add([ref]);
  assert.equal(outs![0].tokenId, first.tokenId);
  for (let s = 0; s < 5; s++) {
    const [a, b] = await decoder.step();
    assert.ok(a.tokenId >= 0);
    assert.equal(b.tokenId, (await alone.step())[0].tokenId);
  }
  decoder.dispose();
  alone.dispose();
  assert.equal(tf.memory().numTensors, before);
});

/**
 * The in-process engine's metric calls, which the decode loop makes
 * synchronously as it works, as an ordered log of its steps: a request
 * joining (its prefill starts), a decode step of the running batch, a first
 * token.
 */
class StepLog implements EngineMetrics {
  readonly events: string[] = [];
  /** Called as a request joins the batch, before its first prefill chunk runs. */
  onJoin: (promptTokens: number) => void = () => {};
  bindEngine() {}
  onQueued() {}
  onPrefill(_adapter: string, promptTokens: number) {
    this.events.push(`prefill ${promptTokens}`);
    this.onJoin(promptTokens);
  }
  onFirstToken() { this.events.push('first token'); }
  onNextToken() {}
  onFinish() {}
  onDecodeStep() { this.events.push('decode step'); }
  onAdapterLoad() {}
  onAdapterEvicted() {}
  onJobStarted() {}
  onJobProgress() {}
  onJobEvaluation() {}
}

/**
 * Runs a greedy stream and, a few tokens in, submits a `promptTokens`-token
 * prompt; returns how many decode steps the running stream got between the
 * long prompt joining the batch and its first token (its prefill).
 */
async function decodeStepsDuringPrefill(engine: Engine, steps: StepLog, promptTokens: number): Promise<number> {
  const from = steps.events.length;
  const controller = new AbortController();
  let long: Promise<GenerateChunk[]> | undefined;
  let tokens = 0;
  const running: GenerateChunk[] = [];
  for await (const c of engine.generate(genParams('Hello there', { sampling: greedy(900) }), controller.signal)) {
    running.push(c);
    if (c.tokenIds.length > 0 && ++tokens === 3) {
      // Once the long prompt has its token, the running stream has served its purpose.
      long = collect(engine, genParams(ids(promptTokens, 9), { sampling: greedy(1) })).finally(() => controller.abort(new Error('done')));
    }
  }
  assert.equal(summary(await long!).last.finish?.reason, 'length');
  assert.equal(summary(running).last.finish?.reason, 'cancelled', 'the running stream ended before the long prompt was done (EOS): pick another prompt');
  const events = steps.events.slice(from);
  const joined = events.indexOf(`prefill ${promptTokens}`);
  const firstToken = events.indexOf('first token', joined);
  assert.ok(joined >= 0 && firstToken > joined, JSON.stringify(events));
  return events.slice(joined, firstToken).filter((e) => e === 'decode step').length;
}

test('a running stream keeps getting tokens while a long prompt prefills in chunks', async () => {
  const promptTokens = 900;
  const decodeSteps: Record<number, number> = {};
  for (const chunk of [1024, 32]) {
    const steps = new StepLog();
    const engine = await createEngine(await testConfig(modelDir, await tempDir(), { prefillChunk: chunk, maxPromptTokens: 1000 }), { log: silentLog, threads: false, metrics: steps });
    try {
      decodeSteps[chunk] = await decodeStepsDuringPrefill(engine, steps, promptTokens);
    } finally {
      await engine.drain(0);
    }
  }
  // Unchunked, the whole prompt runs in one step and the running stream waits for it;
  // in chunks of 32, the stream is decoded after each of the ceil(900 / 32) = 29 chunks
  // but the last (which gives the long prompt its token first).
  assert.deepEqual(decodeSteps, { 1024: 0, 32: Math.ceil(promptTokens / 32) - 1 });
});

test('engine: greedy outputs do not depend on the chunk size; a request cancelled mid-prefill frees everything', async () => {
  const steps = new StepLog();
  const engines = await Promise.all(
    [4, 1024].map(async (chunk) =>
      createEngine(await testConfig(modelDir, await tempDir(), { prefillChunk: chunk, maxPromptTokens: 1000 }), { log: silentLog, threads: false, metrics: chunk === 4 ? steps : undefined }),
    ),
  );
  try {
    const prompts = [ids(3, 1), ids(40, 2), ids(9, 3), ids(100, 4)];
    const outs = await Promise.all(
      engines.map((e) => Promise.all(prompts.map((p) => collect(e, genParams(p, { sampling: greedy(10) }))))),
    );
    outs[0].forEach((chunks, i) => assert.deepEqual(summary(chunks).ids, summary(outs[1][i]).ids, `prompt ${i}`));

    const [small] = engines;
    const before = tf.memory().numTensors;
    const kvBefore = kvCacheMemory().kvCacheBytesInUse;
    // The client goes away as the request joins the batch: its first chunk (4 of
    // 600 prompt columns) still runs, and the next step boundary drops it.
    const controller = new AbortController();
    steps.onJoin = () => controller.abort(new Error('client went away'));
    const chunks = await collect(small, genParams(ids(600, 5), { sampling: greedy(5) }), controller.signal);
    assert.equal(summary(chunks).last.finish?.reason, 'cancelled');
    assert.equal(summary(chunks).ids.length, 0);
    // The loop freed the group's cache and the empty lane in the step that dropped it, before the stream ended.
    assert.equal(tf.memory().numTensors, before);
    assert.equal(kvCacheMemory().kvCacheBytesInUse, kvBefore);
  } finally {
    await Promise.all(engines.map((e) => e.drain(0)));
  }
});
