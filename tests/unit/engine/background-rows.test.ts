/**
 * Evaluate's generations are background rows of the serving decode loop
 * (GenerationService.complete): they share the batch with Generate's rows, a
 * waiting Generate is admitted before any waiting background row, and they
 * count toward neither the queue limit nor the requests waiting. Order is
 * observed through the decode loop's step hook and the order streams end, not
 * through time.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { AdapterRegistry } from '../../../src/engine/adapter-registry.js';
import { AdapterStore } from '../../../src/engine/adapter-store.js';
import { defaultConfig, type LimitsConfig } from '../../../src/engine/config.js';
import { GenerationService } from '../../../src/engine/generation-service.js';
import { GptModel } from '../../../src/model/gpt-model.js';
import { disposeWeights } from '../../../src/model/gpt-weights.js';
import type { SamplingParams } from '../../../src/model/generation/sampling-params.js';
import { DEFAULT_SAMPLING } from '../../helpers/default-sampling.js';
import { byteTokenizer } from '../../helpers/byte-tokenizer.js';
import { testBackend, TINY, tinyWeights } from '../../helpers/tiny-model.js';
import { genParams, greedy, silentLog, tempDir } from './engine-fixture.js';

const weights = tinyWeights(TINY, 5);
let registry: AdapterRegistry;
let model: GptModel;

before(async () => {
  await testBackend();
  registry = new AdapterRegistry(await AdapterStore.open(await tempDir(), TINY, silentLog), silentLog);
  model = new GptModel(TINY, weights, byteTokenizer(), 'tiny');
});
after(() => {
  registry.dispose();
  disposeWeights(weights);
});

/** Greedy, exactly `n` tokens (no EOS stop), as an evaluation row of known length. */
function exactly(n: number): SamplingParams {
  return { ...DEFAULT_SAMPLING, temperature: 0, maxNewTokens: n, stopAtEos: false };
}

function service(limits: Partial<LimitsConfig>, onStepBoundary?: () => void): GenerationService {
  return new GenerationService(model, registry, { ...defaultConfig().limits, ...limits }, silentLog, undefined, { onStepBoundary });
}

async function drainStream(stream: AsyncGenerator<unknown>): Promise<void> {
  for await (const _ of stream);
}

test('a Generate that arrives while background rows wait is admitted before them', async () => {
  const order: string[] = [];
  let boundaries = 0;
  let generate: Promise<void> | undefined;
  const svc = service({ maxBatchSize: 1 }, () => {
    // After the first step: the first background row runs, the second waits; now a Generate arrives.
    if (++boundaries === 1) generate = drainStream(svc.generate(genParams('hi', { sampling: greedy(2) }), new AbortController().signal)).then(() => { order.push('generate'); });
  });
  const signal = new AbortController().signal;
  const first = svc.complete([1, 2, 3], exactly(6), undefined, signal).then(() => order.push('background 1'));
  const second = svc.complete([4, 5, 6], exactly(6), undefined, signal).then(() => order.push('background 2'));
  await Promise.all([first, second]);
  await generate;
  assert.deepEqual(order, ['background 1', 'generate', 'background 2']);
});

test('background rows share the batch with Generate rows and stay out of the queue limit', async () => {
  let both = 0;
  let loadSeen: number | undefined;
  let generate: Promise<void> | undefined;
  const signal = new AbortController().signal;
  const svc = service({ maxBatchSize: 3, maxQueue: 0 }, () => {
    if (generate === undefined && svc.sequences.running === 2) {
      // Both background rows are in the batch: neither counts as load (the queue limit's count).
      loadSeen = svc.load;
      generate = drainStream(svc.generate(genParams('hi', { sampling: greedy(4) }), signal));
    }
    if (svc.sequences.running === 3) both++;
  });
  const texts = await Promise.all([svc.complete([1, 2, 3], exactly(8), undefined, signal), svc.complete([7, 8], exactly(8), undefined, signal)]);
  assert.ok(generate, 'both background rows ran together');
  await generate;
  assert.equal(loadSeen, 0);
  assert.ok(texts.every((t) => t.length > 0));
  assert.ok(both > 0, 'the Generate row and both background rows were decoded in the same steps');
});

test('a background row ends with the text Generate gives the same prompt', async () => {
  const svc = service({ maxBatchSize: 2 });
  const signal = new AbortController().signal;
  const text = await svc.complete(model.tokenizer.encode('hello'), exactly(5), undefined, signal);
  let served = '';
  for await (const c of svc.generate(genParams('hello', { sampling: greedy(5) }), signal)) served += c.text;
  // Generate stops at EOS, the background row here does not: the served text is a prefix (and not empty, or this proves nothing).
  assert.ok(served.length > 0, 'the seeded model does not start with EOS');
  assert.ok(text.startsWith(served), `${JSON.stringify(text)} starts with ${JSON.stringify(served)}`);
});

test('an aborted background row rejects with the signal\'s reason; after drain none are taken', async () => {
  const svc = service({ maxBatchSize: 2 });
  const controller = new AbortController();
  const row = svc.complete([1, 2, 3], exactly(50), undefined, controller.signal);
  controller.abort(new Error('stop'));
  await assert.rejects(row, /stop/);
  await svc.drain(1000);
  await assert.rejects(svc.complete([1], exactly(2), undefined, new AbortController().signal), /shutting down/);
});

test('a step hook that throws ends every request with its error instead of leaving them waiting', async () => {
  const svc = service({ maxBatchSize: 1 }, () => {
    throw new Error('hook failed');
  });
  const signal = new AbortController().signal;
  const rows = [svc.complete([1, 2, 3], exactly(6), undefined, signal), svc.complete([4, 5], exactly(6), undefined, signal)];
  const results = await Promise.allSettled(rows);
  assert.deepEqual(results.map((r) => r.status), ['rejected', 'rejected']);
  assert.ok(results.every((r) => r.status === 'rejected' && /hook failed/.test(String(r.reason))));
  assert.equal(svc.load + svc.sequences.running + svc.sequences.waiting, 0);
});
