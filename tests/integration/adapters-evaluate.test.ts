import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { status as Code } from '@grpc/grpc-js';
import { AdapterMethod, AdapterResidency } from '../../src/gen/gentune/v1/adapters.js';
import { Metric } from '../../src/gen/gentune/v1/evaluate.js';
import { LrScheduler } from '../../src/gen/gentune/v1/fine_tune.js';
import { FinishReason, type GenerateResponse } from '../../src/gen/gentune/v1/generate.js';
import { meteorScore } from '../../src/eval/meteor.js';
import { pySplit } from '../../src/eval/python-text.js';
import { longGeneration } from './helpers/fixture-model.js';
import { collect, eventually, rejectsWith, startHarness, type Harness } from './helpers/harness.js';

const EXAMPLES = [
  { prompt: 'Q: 1+1?', completion: ' 2' },
  { prompt: 'Q: 2+2?', completion: ' 4' },
  { prompt: 'Q: 3+3?', completion: ' 6' },
];

describe('Adapters and Evaluate', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
    // Fixtures are made through the API, so the same test runs on the real engine.
    for (const adapter of ['alpha', 'alpha', 'beta']) {
      await collect(h.client.fineTune({ adapter, examples: EXAMPLES, hyperparameters: { maxSteps: 2 } }));
    }
  });
  after(() => h.close());

  test('ListAdapters shows names, versions and their details', async () => {
    const adapters = await h.client.listAdapters();
    const alpha = adapters.find((a) => a.name === 'alpha');
    assert.ok(alpha);
    assert.equal(alpha.latestVersion, 2);
    assert.deepEqual(alpha.versions.map((v) => v.version), [1, 2]);
    const v = alpha.versions[0]!;
    assert.equal(v.method, AdapterMethod.ADAPTER_METHOD_LORA);
    assert.ok(v.r > 0 && v.sizeBytes > 0 && v.baseModel !== '' && v.createdAt instanceof Date && v.jobId !== '');
    assert.deepEqual(adapters.map((a) => a.name), [...adapters.map((a) => a.name)].sort());
  });

  test('ListAdapters counts the requests each version served: Generate requests, and Evaluate calls (one each)', async () => {
    for (let i = 0; i < 2; i++) await collect(h.client.fineTune({ adapter: 'counted', examples: EXAMPLES, hyperparameters: { maxSteps: 1 } }));
    const served = async () => (await h.client.listAdapters()).find((a) => a.name === 'counted')!.versions.map((v) => v.requestsServed);
    assert.deepEqual(await served(), [0, 0], 'publishing and loading serve nothing');
    const N = 3;
    for (let i = 0; i < N; i++) await h.client.generateText({ prompt: `x${i}`, adapter: 'counted@1', sampling: { maxNewTokens: 2 } });
    await h.client.generateText({ prompt: 'base', sampling: { maxNewTokens: 2 } });
    assert.deepEqual(await served(), [N, 0]);
    await h.client.generateText({ prompt: 'latest', adapter: 'counted', sampling: { maxNewTokens: 2 } });
    await h.client.evaluate({ examples: EXAMPLES, adapters: ['counted@2'], metrics: [Metric.METRIC_LOSS] });
    await h.client.loadAdapter('counted@1', true);
    assert.deepEqual(await served(), [N, 2]);
    await rejectsWith(h.client.generateText({ prompt: 'x', adapter: 'counted@3' }), Code.NOT_FOUND, /counted@3/);
    assert.deepEqual(await served(), [N, 2], 'a request for a missing version counts nowhere');
    // GetServerInfo's device memory follows the serving thread: deleting the resident versions frees their bytes.
    const bytes = async () => (await h.client.getServerInfo()).deviceMemory!.numBytes;
    const before = await bytes();
    await h.client.deleteAdapter('counted');
    assert.ok((await bytes()) < before, `device memory ${before} -> ${await bytes()} bytes`);
  });

  test('LoadAdapter pins / preloads, UnloadAdapter frees, DeleteAdapter removes one version or all', async () => {
    const pinned = await h.client.loadAdapter('alpha@1', true);
    assert.equal(pinned.versions.find((v) => v.version === 1)?.residency, AdapterResidency.ADAPTER_RESIDENCY_PINNED);
    const loaded = await h.client.loadAdapter('beta');
    assert.equal(loaded.versions.at(-1)?.residency, AdapterResidency.ADAPTER_RESIDENCY_LOADED);
    const unloaded = await h.client.unloadAdapter('alpha');
    assert.ok(unloaded.versions.every((v) => v.residency === AdapterResidency.ADAPTER_RESIDENCY_STORED));

    await collect(h.client.fineTune({ adapter: 'gamma', examples: EXAMPLES, hyperparameters: { maxSteps: 1 } }));
    await collect(h.client.fineTune({ adapter: 'gamma', examples: EXAMPLES, hyperparameters: { maxSteps: 1 } }));
    await h.client.deleteAdapter('gamma@1');
    const gamma = (await h.client.listAdapters()).find((a) => a.name === 'gamma');
    assert.deepEqual(gamma?.versions.map((v) => v.version), [2]);
    await h.client.deleteAdapter('gamma');
    assert.ok(!(await h.client.listAdapters()).some((a) => a.name === 'gamma'));
    await rejectsWith(h.client.deleteAdapter('gamma'), Code.NOT_FOUND, /gamma/);
    await rejectsWith(h.client.loadAdapter('alpha@99'), Code.NOT_FOUND, /alpha@99/);
    await rejectsWith(h.client.unloadAdapter('nope'), Code.NOT_FOUND);
    await rejectsWith(h.client.generateText({ prompt: 'x', adapter: 'gamma' }), Code.NOT_FOUND, /gamma/);
  });

  test('a generation in flight keeps the adapter version it started with when that version is deleted', async () => {
    await collect(h.client.fineTune({ adapter: 'delta', examples: EXAMPLES, hyperparameters: { maxSteps: 1 } }));
    const messages: GenerateResponse[] = [];
    const stream = (async () => {
      for await (const m of h.client.generate({ ...longGeneration(150), adapter: 'delta@1' })) messages.push(m);
    })();
    await eventually(() => messages.length >= 2, 5000, 'the stream to start');
    await h.client.deleteAdapter('delta@1');
    await rejectsWith(h.client.generateText({ prompt: 'x', adapter: 'delta@1' }), Code.NOT_FOUND, /delta@1/);
    await stream;
    const last = messages.at(-1)!;
    assert.equal(last.finishReason, FinishReason.FINISH_REASON_LENGTH);
    assert.equal(last.adapter, 'delta@1');
    assert.equal(messages.flatMap((m) => m.tokenIds).length, 150);
  });

  for (const rpc of ['loadAdapter', 'unloadAdapter', 'deleteAdapter'] as const) {
    test(`${rpc} validates the adapter reference`, async () => {
      await rejectsWith(h.client[rpc](''), Code.INVALID_ARGUMENT, /^`adapter` is required/);
      await rejectsWith(h.client[rpc]('../x'), Code.INVALID_ARGUMENT, /`adapter` must not contain '\/', '\\' or '\.\.', got "\.\.\/x"/);
      await rejectsWith(h.client[rpc]('a\\b'), Code.INVALID_ARGUMENT, /`adapter` must not contain/);
      await rejectsWith(h.client[rpc]('alpha/..'), Code.INVALID_ARGUMENT, /`adapter` must not contain/);
      await rejectsWith(h.client[rpc]('x@0'), Code.INVALID_ARGUMENT, /`adapter` version must be a positive integer/);
    });
  }

  test('Evaluate compares the base model with adapters, in order, with per-example rows', async () => {
    const res = await h.client.evaluate({
      examples: EXAMPLES,
      adapters: ['alpha', 'beta@1'],
      includeBaseModel: true,
      metrics: [Metric.METRIC_LOSS, Metric.METRIC_PERPLEXITY, Metric.METRIC_EXACT_MATCH, Metric.METRIC_CHRF_PLUS_PLUS, Metric.METRIC_METEOR],
      includeExamples: true,
    });
    assert.equal(res.numExamples, 3);
    assert.deepEqual(res.results.map((r) => r.adapter), ['', 'alpha@2', 'beta@1']);
    for (const r of res.results) {
      assert.ok(Number.isFinite(r.metrics?.loss) && Number.isFinite(r.metrics?.perplexity));
      assert.ok(r.metrics?.exactMatch !== undefined);
      const chrfPlusPlus = r.metrics?.chrfPlusPlus;
      assert.ok(chrfPlusPlus !== undefined && chrfPlusPlus >= 0 && chrfPlusPlus <= 100, `chrF++ 0..100, got ${chrfPlusPlus}`);
      assert.ok(r.examples.every((e) => e.metrics?.chrfPlusPlus !== undefined), 'sentence chrF++ per example');
      // METEOR of each generation against its completion, as src/eval scores it; the mean in aggregates.
      const meteor = r.examples.map((e) => meteorScore([pySplit(EXAMPLES[e.index].completion)], pySplit(e.generated)));
      assert.deepEqual(r.examples.map((e) => e.metrics?.meteor), meteor);
      assert.ok(Math.abs(r.metrics!.meteor! - meteor.reduce((a, b) => a + b, 0) / meteor.length) < 1e-12);
      assert.equal(r.metrics?.bleu, undefined, 'only requested metrics are set');
      assert.equal(r.metrics?.chrf, undefined, 'only requested metrics are set');
      assert.equal(r.examples.length, 3);
    }
  });

  test('Evaluate base vs adapter: an adapter trained on the examples has a lower loss on them than the base model', async () => {
    const events = await collect(
      h.client.fineTune({
        adapter: 'fit',
        examples: EXAMPLES,
        method: { $case: 'lora', value: { r: 8, loraAlpha: 16, loraDropout: 0, targetModules: ['c_attn', 'c_fc'] } },
        hyperparameters: { maxSteps: 12, batchSize: 3, learningRate: 2e-2, lrScheduler: LrScheduler.LR_SCHEDULER_CONSTANT, seed: '1' },
      }),
    );
    assert.equal(events.at(-1)?.event?.$case, 'succeeded');
    const res = await h.client.evaluate({ examples: EXAMPLES, adapters: ['fit'], includeBaseModel: true, metrics: [Metric.METRIC_LOSS, Metric.METRIC_TOKEN_ACCURACY] });
    const [base, fit] = res.results;
    assert.deepEqual(res.results.map((r) => r.adapter), ['', 'fit@1']);
    // A modest margin: the fixture's tied embeddings are tiny (0.02 scale), so no adapter
    // can make it confident; its loss stays near ln(257) = 5.5 (training is seeded, dropout 0).
    assert.ok(fit!.metrics!.loss! < base!.metrics!.loss! - 0.1, `adapter ${fit!.metrics!.loss} vs base ${base!.metrics!.loss}`);
    assert.ok(fit!.metrics!.tokenAccuracy! >= base!.metrics!.tokenAccuracy!);
  });

  test('Evaluate defaults to the base model and loss metrics', async () => {
    const ds = await h.client.uploadDataset({ name: 'eval' }, Buffer.from(EXAMPLES.map((e) => JSON.stringify(e)).join('\n')));
    const res = await h.client.evaluate({ datasetId: ds.id, maxExamples: 2 });
    assert.equal(res.results.length, 1);
    assert.equal(res.results[0]!.adapter, '');
    assert.equal(res.numExamples, 2);
    assert.ok(res.results[0]!.metrics?.tokenAccuracy !== undefined);
    assert.equal(res.results[0]!.examples.length, 0);
  });

  test('Evaluate honors the deadline and aborts the engine', async () => {
    const many = Array.from({ length: 2000 }, (_, i) => ({ prompt: `q${i}`, completion: 'a' }));
    const before = h.engine.evaluateSignals.length;
    await rejectsWith(h.client.evaluate({ examples: many, adapters: ['alpha'], includeBaseModel: true }, { timeoutMs: 300 }), Code.DEADLINE_EXCEEDED);
    await eventually(() => h.engine.evaluateSignals[before]?.aborted === true, 2000, 'the deadline to reach the engine');
    assert.match(String(h.engine.evaluateSignals[before]!.reason?.message), /deadline|client cancelled/);
  });

  test('Evaluate: unknown adapter / dataset are NOT_FOUND', async () => {
    await rejectsWith(h.client.evaluate({ examples: EXAMPLES, adapters: ['nope'] }), Code.NOT_FOUND, /nope/);
    await rejectsWith(h.client.evaluate({ datasetId: 'ds-none' }), Code.NOT_FOUND, /ds-none/);
    await rejectsWith(h.client.evaluate({ examples: EXAMPLES, adapters: ['alpha@7'] }), Code.NOT_FOUND, /alpha@7/);
  });

  const bad: [string, Record<string, unknown>, RegExp][] = [
    ['no data', {}, /exactly one of `dataset_id` and `examples` must be set, got none/],
    ['bad adapter', { examples: EXAMPLES, adapters: ['ok', '../x'] }, /`adapters\[1\]` must not contain/],
    ['duplicate adapters', { examples: EXAMPLES, adapters: ['a', 'a'] }, /`adapters` must not contain duplicates, got "a" twice/],
    ['too many adapters', { examples: EXAMPLES, adapters: Array.from({ length: 17 }, (_, i) => `a${i}`) }, /`adapters` must have at most 16 items, got 17/],
    ['unspecified metric', { examples: EXAMPLES, metrics: [0] }, /`metrics\[0\]` must be one of METRIC_LOSS.*got 0/],
    ['duplicate metric', { examples: EXAMPLES, metrics: [1, 1] }, /`metrics` must not contain duplicates/],
    ['max_examples 0', { examples: EXAMPLES, maxExamples: 0 }, /`max_examples` must be >= 1 and <= 100000, got 0/],
    ['max_seq_len 1', { examples: EXAMPLES, maxSeqLen: 1 }, /`max_seq_len` must be >= 8/],
    ['generation temperature', { examples: EXAMPLES, generation: { temperature: -2 } }, /`temperature` must be >= 0 and <= 100, got -2/],
    ['bad example', { examples: [{ text: 'a', prompt: 'b' }] }, /exactly one of `examples\[0\]\.prompt`/],
  ];
  for (const [name, req, message] of bad) {
    test(`Evaluate INVALID_ARGUMENT: ${name}`, async () => {
      await rejectsWith(h.client.evaluate(req), Code.INVALID_ARGUMENT, message);
    });
  }

  test('after all the bad input, the adapters are as they were and still serve', async () => {
    const adapters = await h.client.listAdapters();
    assert.deepEqual(adapters.map((a) => `${a.name}@${a.versions.map((v) => v.version).join(',')}`), ['alpha@1,2', 'beta@1', 'fit@1']);
    assert.equal((await h.client.generateText({ prompt: 'x', adapter: 'beta', sampling: { maxNewTokens: 2 } })).adapter, 'beta@1');
  });
});
