/**
 * EvaluateStream: progress per model and phase as the server works, then the
 * response unary Evaluate gives for the same request; same errors, same role
 * accounting (counted in the per-RPC metrics).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { status as Code } from '@grpc/grpc-js';
import { EvaluatePhase, type EvaluateEvent, type EvaluateProgress, EvaluateResponse, Metric } from '../../src/gen/gentune/v1/evaluate.js';
import { GentuneMetrics } from '../../src/observability/metrics.js';
import { collect, eventually, rejectsWith, startHarness, type Harness } from './helpers/harness.js';

/** More than one loss chunk (16) and one generation batch (max_batch_size, 4 here) per model. */
const EXAMPLES = Array.from({ length: 37 }, (_, i) => ({ prompt: `Q: ${i}+${i}?`, completion: ` ${2 * i}` }));
const MAX_BATCH = 4;

/** evalSeconds is wall time, the one field two runs of the same request do not share. */
function withoutTimes(res: EvaluateResponse): unknown {
  const json = EvaluateResponse.toJSON(res) as { results?: { evalSeconds?: number }[] };
  for (const r of json.results ?? []) delete r.evalSeconds;
  return json;
}

describe('EvaluateStream', () => {
  let h: Harness;
  const metrics = new GentuneMetrics({ processMetrics: false });
  before(async () => {
    h = await startHarness({ limits: { maxBatchSize: MAX_BATCH }, metrics: metrics.rpc });
    await collect(h.client.fineTune({ adapter: 'tuned', examples: EXAMPLES.slice(0, 3), hyperparameters: { maxSteps: 2, seed: '3' } }));
  });
  after(() => h.close());

  const request = {
    examples: EXAMPLES,
    adapters: ['tuned'],
    includeBaseModel: true,
    metrics: [Metric.METRIC_LOSS, Metric.METRIC_TOKEN_ACCURACY, Metric.METRIC_EXACT_MATCH, Metric.METRIC_BLEU],
    // Seeded sampling: the same request generates the same text on both RPCs.
    generation: { maxNewTokens: 4, temperature: 0.8, seed: '11' },
    includeExamples: true,
  };

  test('progress per model and phase, examples_done increasing to examples_total, then one result equal to unary Evaluate', async () => {
    const events: EvaluateEvent[] = await collect(h.client.evaluateStream(request));
    const results = events.filter((e) => e.event?.$case === 'result');
    assert.equal(results.length, 1, 'exactly one result');
    assert.equal(events.at(-1)?.event?.$case, 'result', 'the result is the last message');

    const progress = events.flatMap((e) => (e.event?.$case === 'progress' ? [e.event.value] : []));
    const runs = new Map<string, EvaluateProgress[]>();
    for (const p of progress) {
      const key = `${p.modelIndex} ${p.adapter} ${p.phase}`;
      runs.set(key, [...(runs.get(key) ?? []), p]);
    }
    // Base first, then the adapter; loss before generation for each.
    assert.deepEqual([...runs.keys()], [
      `0  ${EvaluatePhase.EVALUATE_PHASE_LOSS}`,
      `0  ${EvaluatePhase.EVALUATE_PHASE_GENERATION}`,
      `1 tuned@1 ${EvaluatePhase.EVALUATE_PHASE_LOSS}`,
      `1 tuned@1 ${EvaluatePhase.EVALUATE_PHASE_GENERATION}`,
    ]);
    for (const [key, run] of runs) {
      const done = run.map((p) => p.examplesDone);
      assert.ok(run.length > 1, `${key}: more than one report (${done})`);
      assert.ok(done.every((d, i) => d > (done[i - 1] ?? 0)), `${key}: strictly increasing, got ${done}`);
      assert.ok(run.every((p) => p.examplesTotal === EXAMPLES.length && p.numModels === 2), `${key}: totals`);
      assert.equal(done.at(-1), EXAMPLES.length, `${key}: ends at examples_total`);
    }
    // The generation phase reports once per example (each is a row of the decode loop).
    assert.deepEqual(runs.get(`0  ${EvaluatePhase.EVALUATE_PHASE_GENERATION}`)!.map((p) => p.examplesDone), EXAMPLES.map((_, i) => i + 1));

    const streamed = results[0]!.event!.$case === 'result' ? results[0]!.event!.value : undefined;
    const unary = await h.client.evaluate(request);
    assert.deepEqual(withoutTimes(streamed!), withoutTimes(unary));
    assert.equal(unary.results.length, 2);
    assert.ok(unary.results.every((r) => r.examples.length === EXAMPLES.length && r.examples.every((e) => e.generated !== '')));
  });

  test('the same validation and errors as Evaluate', async () => {
    await rejectsWith(collect(h.client.evaluateStream({ examples: EXAMPLES, adapters: ['nope'] })), Code.NOT_FOUND, /nope/);
    await rejectsWith(collect(h.client.evaluateStream({ datasetId: 'ds-none' })), Code.NOT_FOUND, /ds-none/);
    await rejectsWith(collect(h.client.evaluateStream({ examples: EXAMPLES, metrics: [4000 as Metric] })), Code.INVALID_ARGUMENT, /`metrics\[0\]`/);
    await rejectsWith(collect(h.client.evaluateStream({})), Code.INVALID_ARGUMENT);
  });

  test('a deadline ends the stream with DEADLINE_EXCEEDED and aborts the engine', async () => {
    const many = Array.from({ length: 2000 }, (_, i) => ({ prompt: `q${i}`, completion: 'a' }));
    const before = h.engine.evaluateSignals.length;
    await rejectsWith(collect(h.client.evaluateStream({ examples: many, adapters: ['tuned'], includeBaseModel: true }, { timeoutMs: 300 })), Code.DEADLINE_EXCEEDED);
    await eventually(() => h.engine.evaluateSignals[before]?.aborted === true, 2000, 'the deadline to reach the engine');
  });

  test('calls are counted per method, as every RPC', async () => {
    const values = (await metrics.registry.getSingleMetric('gentune_rpc_requests_total')!.get()).values;
    const count = (code: string) => values.find((v) => v.labels.method === 'EvaluateStream' && v.labels.code === code)?.value ?? 0;
    assert.ok(count('OK') >= 1, JSON.stringify(values.filter((v) => v.labels.method === 'EvaluateStream')));
    assert.ok(count('NOT_FOUND') >= 2);
  });
});
