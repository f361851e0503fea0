import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../../src/common/rng.js';
import { disposeAdapter, type Adapter } from '../../../src/model/adapter.js';
import { disposeWeights, type GptWeights, isLlamaBlock } from '../../../src/model/gpt-weights.js';
import { tokenizeExample } from '../../../src/training/data/tokenize-example.js';
import type { TokenSequence } from '../../../src/training/data/token-sequence.js';
import { evaluateLoss } from '../../../src/training/evaluate-loss.js';
import { readTensors } from '../../../src/training/host-readback.js';
import { train, type ProgressEvent, type TrainOptions } from '../../../src/training/trainer.js';
import type { TrainerCheckpoint } from '../../../src/training/trainer-checkpoint.js';
import { testBackend, TINY, tinyWeights } from '../../helpers/tiny-model.js';
import { ByteTokenizer, EOS } from './data/byte-tokenizer.js';

const tokenizer = new ByteTokenizer();

/** prompt/completion sequences of `mapping` over 3-letter strings of 'abcd', shuffled by `seed`. */
function dataset(mapping: (s: string) => string, count: number, seed: number): TokenSequence[] {
  const words: string[] = [];
  for (const a of 'abcd') for (const b of 'abcd') for (const c of 'abcd') words.push(a + b + c);
  return new Rng(seed)
    .shuffle(words)
    .slice(0, count)
    .map((w, i) =>
      tokenizeExample(
        { line: i + 1, example: { kind: 'prompt_completion', prompt: `${w}=`, completion: mapping(w) } },
        tokenizer,
        { maxSeqLen: 16 },
      ),
    );
}
const upper = (s: string): string => s.toUpperCase();
const trainSet = dataset(upper, 40, 1);
const validation = dataset(upper, 12, 2);

let weights: GptWeights;
before(async () => {
  await testBackend();
  weights = tinyWeights(TINY, 3);
});

function options(patch: Partial<TrainOptions> = {}, hp: TrainOptions['hyperparameters'] = {}): TrainOptions {
  return {
    config: TINY,
    weights,
    method: { kind: 'lora', r: 4, alpha: 8, dropout: 0.1, targetModules: ['attn.c_attn', 'mlp.c_fc'] },
    train: trainSet,
    validation,
    padId: EOS,
    ...patch,
    hyperparameters: {
      maxSteps: 12,
      batchSize: 4,
      gradientAccumulationSteps: 2,
      learningRate: 5e-3,
      warmupSteps: 2,
      evalIntervalSteps: 4,
      seed: 5,
      ...hp,
    },
  };
}

/** Every tensor of an adapter, flattened in a fixed order, read back and freed. */
async function adapterValues(adapter: Adapter): Promise<Float32Array> {
  const tensors =
    adapter.kind === 'lora'
      ? [...adapter.lora.modules.values()].flatMap((m) => [m.a, m.b])
      : [...adapter.blocks.values()]
          .flatMap((b) => (isLlamaBlock(b) ? assert.fail('a GPT-2 block') : [b.c_attn.weight, b.c_attn.bias, b.ln_1.weight, b.mlp_c_proj.weight]))
          .concat([adapter.lnF.weight]);
  const parts = await readTensors(tensors);
  disposeAdapter(adapter);
  return Float32Array.from(parts.flatMap((p) => Array.from(p)));
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** A checkpoint after a trip through JSON (state) and fresh arrays (tensors), as a store would give it back. */
function roundTrip(cp: TrainerCheckpoint): TrainerCheckpoint {
  const tensors = new Map([...cp.tensors].map(([k, v]) => [k, { shape: [...v.shape], data: Float32Array.from(v.data) }]));
  return { state: JSON.parse(JSON.stringify(cp.state)), tensors };
}

for (const restoreBestWeights of [false, true]) {
  const what = `dropout, accumulation, evals${restoreBestWeights ? ', best snapshot' : ''}`;
  test(`resuming from a checkpoint ends exactly where an uninterrupted run ends (${what})`, async () => {
    const hp = { checkpointIntervalSteps: 5, restoreBestWeights };
    const checkpoints: TrainerCheckpoint[] = [];
    const lossesA: number[] = [];
    const a = await train({
      ...options({}, hp),
      callbacks: {
        onCheckpoint: (e) => void checkpoints.push(roundTrip(e.checkpoint)),
        onProgress: (e) => void lossesA.push(e.loss),
      },
    });
    assert.deepEqual(checkpoints.map((c) => c.state.step), [5, 10]);
    assert.equal(checkpoints[0].tensors.has(`best/${checkpoints[0].state.parameters[0]}`), restoreBestWeights);
    const lossesB: number[] = [];
    const b = await train({
      ...options({}, hp),
      resumeFrom: checkpoints[0],
      callbacks: { onProgress: (e) => void lossesB.push(e.loss) },
    });
    assert.equal(b.steps, 12);
    assert.deepEqual(lossesB, lossesA.slice(5));
    assert.equal(b.best?.step, a.best?.step);
    const diff = maxAbsDiff(await adapterValues(a.adapter), await adapterValues(b.adapter));
    assert.ok(diff <= 1e-6, `max |uninterrupted - resumed| = ${diff}`);
  });
}

test('a run is deterministic under its seed, and another seed gives another adapter', async () => {
  const once = await adapterValues((await train(options())).adapter);
  const again = await adapterValues((await train(options())).adapter);
  const other = await adapterValues((await train(options({}, { seed: 6 }))).adapter);
  assert.deepEqual(once, again);
  assert.ok(maxAbsDiff(once, other) > 1e-4);
});

test('gradient accumulation over 2 micro-batches equals one batch of all the tokens', async () => {
  // 8 sequences of one length: batch 8 and two batches of 4 hold the same tokens.
  const same = trainSet.filter((s) => s.ids.length === trainSet[0].ids.length).slice(0, 8);
  assert.equal(same.length, 8);
  const run = async (batchSize: number, gradientAccumulationSteps: number): Promise<[ProgressEvent, Float32Array]> => {
    let event: ProgressEvent | undefined;
    const r = await train({
      ...options(
        { train: same, validation: undefined, method: { kind: 'last_layers', numLayers: 1 } },
        { maxSteps: 1, batchSize, gradientAccumulationSteps, evalIntervalSteps: 0 },
      ),
      callbacks: { onProgress: (e) => void (event = e) },
    });
    return [event!, await adapterValues(r.adapter)];
  };
  const [one, oneValues] = await run(8, 1);
  const [acc, accValues] = await run(4, 2);
  assert.ok(Math.abs(one.loss - acc.loss) < 1e-5, `loss ${one.loss} vs ${acc.loss}`);
  assert.ok(Math.abs(one.gradNorm - acc.gradNorm) < 1e-5 * one.gradNorm, `grad norm ${one.gradNorm} vs ${acc.gradNorm}`);
  assert.ok(maxAbsDiff(oneValues, accValues) < 1e-6);
});

test('an abort stops the run at the next step boundary and says cancelled', async () => {
  const controller = new AbortController();
  const steps: number[] = [];
  const result = await train({
    ...options({ signal: controller.signal }, { maxSteps: 50 }),
    callbacks: {
      onProgress: (e) => {
        steps.push(e.step);
        if (e.step === 3) setTimeout(() => controller.abort(), 0);
      },
    },
  });
  assert.equal(result.status, 'cancelled');
  // The timer fires in the macrotask turn the trainer yields after step 3.
  assert.equal(result.steps, 3);
  assert.deepEqual(steps, [1, 2, 3]);
  assert.equal(result.evaluation, undefined);
  disposeAdapter(result.adapter);
  const early = await train(options({ signal: AbortSignal.abort() }));
  assert.equal(early.status, 'cancelled');
  assert.equal(early.steps, 0);
  disposeAdapter(early.adapter);
});

test('early stopping halts after `patience` evaluations without improvement and returns the best weights', async () => {
  // Train on uppercase, validate on copying: the more the model learns to
  // uppercase, the worse it copies, so the validation loss turns up.
  const copyValidation = dataset((s) => s, 12, 2);
  const evals: { step: number; loss: number }[] = [];
  const result = await train({
    ...options({ validation: copyValidation }, { maxSteps: 200, learningRate: 2e-2, evalIntervalSteps: 3, earlyStoppingPatience: 2 }),
    callbacks: { onEvaluation: (e) => void evals.push({ step: e.step, loss: e.loss }) },
  });
  assert.equal(result.status, 'early_stopped');
  const best = evals.reduce((m, e) => (e.loss < m.loss ? e : m));
  assert.equal(result.best!.step, best.step);
  assert.ok(best.step < result.steps);
  assert.equal(result.steps, best.step + 2 * 3, 'stops 2 evaluations after the best');
  assert.ok(evals.at(-1)!.loss > best.loss);
  // The returned adapter is the best one: re-evaluating it gives the best loss, not the last.
  const again = await evaluateLoss(TINY, weights, copyValidation, { adapter: result.adapter, padId: EOS, batchSize: 4 });
  disposeAdapter(result.adapter);
  assert.ok(Math.abs(again.loss - best.loss) < 1e-5, `re-evaluated ${again.loss}, best ${best.loss}, last ${evals.at(-1)!.loss}`);
  assert.equal(result.evaluation!.loss, best.loss);
});

test('tf.memory().numTensors stays flat over 20 steps with evals and checkpoints, and the run frees everything', async () => {
  const before = tf.memory().numTensors;
  const counts: number[] = [];
  const result = await train({
    ...options({}, { maxSteps: 20, evalIntervalSteps: 5, checkpointIntervalSteps: 5, earlyStoppingPatience: 100 }),
    callbacks: { onProgress: () => void counts.push(tf.memory().numTensors) },
  });
  assert.equal(counts.length, 20);
  assert.ok(counts.every((c) => c === counts[0]), `tensor counts per step: ${counts.join(',')}`);
  disposeAdapter(result.adapter);
  assert.equal(tf.memory().numTensors, before);
});

test('progress reports the step, epoch, learning rate and throughput', async () => {
  const events: ProgressEvent[] = [];
  const result = await train({
    ...options({}, { maxSteps: undefined, epochs: 2, schedule: 'linear' }),
    callbacks: { onProgress: (e) => void events.push(e) },
  });
  disposeAdapter(result.adapter);
  // 40 sequences / batch 4 = 10 batches an epoch; 2 per step: 5 steps an epoch.
  assert.equal(result.totalSteps, 10);
  assert.deepEqual(events.map((e) => e.step), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.equal(events[4].epoch, 1);
  assert.equal(events[9].epoch, 2);
  assert.equal(events[0].learningRate, 5e-3 / 2);
  assert.ok(events.every((e) => e.tokensPerSecond > 0 && e.etaSeconds >= 0 && e.gradNorm > 0 && e.loss > 0));
  assert.equal(events[9].etaSeconds, 0);
  assert.ok(result.lossTokens > 0 && result.trainLoss === events[9].loss);
});

test('bad settings and mismatched checkpoints are InvalidArgument naming the field', async () => {
  await assert.rejects(
    train(options({ validation: undefined }, { earlyStoppingPatience: 2 })),
    /`early_stopping_patience` 2 needs validation data/,
  );
  await assert.rejects(
    train(options({}, { gradientAccumulationSteps: 0 })),
    /`gradient_accumulation_steps` must be a positive integer, got 0/,
  );
  const tooLong = { ids: new Int32Array(TINY.nPositions + 1), lossMask: new Uint8Array(TINY.nPositions + 1).fill(1) };
  await assert.rejects(train(options({ train: [tooLong] })), /training sequence 0 is 65 tokens, more than the model's n_positions 64/);
  const badId = { ids: Int32Array.from([1, 300]), lossMask: Uint8Array.from([0, 1]) };
  await assert.rejects(
    train(options({ validation: [badId] })),
    /validation sequence 0 holds token id 300, outside the model's vocabulary \[0, 257\)/,
  );
  let checkpoint: TrainerCheckpoint | undefined;
  const r = await train({
    ...options({}, { checkpointIntervalSteps: 4 }),
    callbacks: { onCheckpoint: (e) => void (checkpoint ??= e.checkpoint) },
  });
  disposeAdapter(r.adapter);
  await assert.rejects(train({ ...options({}, { maxSteps: 13 }), resumeFrom: checkpoint }), /plans 12 steps, this run 13/);
  const otherMethod = options({ method: { kind: 'lora', r: 2, alpha: 8, dropout: 0.1 } });
  await assert.rejects(train({ ...otherMethod, resumeFrom: checkpoint }), /trained with method/);
});

test('the fixtures are freed', () => {
  disposeWeights(weights);
  assert.equal(tf.memory().numTensors, 0);
});
