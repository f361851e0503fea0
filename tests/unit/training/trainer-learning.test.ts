import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../../src/common/rng.js';
import { disposeAdapter, type Adapter } from '../../../src/model/adapter.js';
import { randomGpt2Tensors } from '../../../src/model/checkpoint/hf-gpt2-folder.js';
import { forward } from '../../../src/model/gpt.js';
import { disposeWeights, weightsFromHost, type GptWeights } from '../../../src/model/gpt-weights.js';
import { adapterForwardOptions } from '../../../src/training/batch-input.js';
import { tokenizeExample } from '../../../src/training/data/tokenize-example.js';
import { evaluateLoss } from '../../../src/training/evaluate-loss.js';
import { train } from '../../../src/training/trainer.js';
import type { TrainMethod } from '../../../src/training/trainable.js';
import { testBackend, TINY } from '../../helpers/tiny-model.js';
import { ByteTokenizer, EOS } from './data/byte-tokenizer.js';

// The task: "abc=" -> "cba" over 3-letter strings of a 6-letter alphabet (216
// strings); 160 to train on, 30 held out. Solving the held-out strings needs
// the rule (attend to the mirrored position), not memorised pairs.
const tokenizer = new ByteTokenizer();
const pairs: [string, string][] = [];
for (const a of 'abcdef') for (const b of 'abcdef') for (const c of 'abcdef') pairs.push([`${a}${b}${c}=`, `${c}${b}${a}`]);
new Rng(7).shuffle(pairs);
const toSequences = (items: [string, string][]) =>
  items.map(([prompt, completion], i) =>
    tokenizeExample({ line: i + 1, example: { kind: 'prompt_completion', prompt, completion } }, tokenizer, { maxSeqLen: 16 }),
  );
const trainSet = toSequences(pairs.slice(0, 160));
const heldOut = pairs.slice(160, 190);
const validation = toSequences(heldOut);

let weights: GptWeights;

before(async () => {
  await testBackend();
  // A seeded random model whose final LayerNorm is scaled up 10x: with GPT-2's
  // N(0, 0.02) tied embeddings and unit LayerNorm, logits cannot exceed about
  // 0.6, so no adapter could push the loss far below ln(vocab); a pretrained
  // GPT-2 has the large logit range this gives.
  const host = randomGpt2Tensors(TINY, 1);
  const lnF = host.get('ln_f.weight')!;
  lnF.data = lnF.data.map((x) => 10 * x);
  weights = weightsFromHost(TINY, host);
});

/** Greedy completion of `prompt`, up to `maxNew` tokens or EOS. */
async function greedy(adapter: Adapter | undefined, prompt: string, maxNew: number): Promise<string> {
  const ids = tokenizer.encode(prompt);
  const start = ids.length;
  for (let k = 0; k < maxNew; k++) {
    const next = tf.tidy(() => {
      const input = {
        batch: 1,
        length: ids.length,
        ids: Int32Array.from(ids),
        positions: Int32Array.from(ids, (_, i) => i),
        valid: new Uint8Array(ids.length).fill(1),
      };
      return tf.argMax(forward(TINY, weights, input, { ...adapterForwardOptions(adapter, 1), output: 'last' }), 1);
    });
    const id = (await next.data())[0];
    next.dispose();
    if (id === EOS) break;
    ids.push(id);
  }
  return tokenizer.decode(ids.slice(start));
}

async function exactMatch(adapter: Adapter | undefined): Promise<number> {
  let hits = 0;
  for (const [prompt, completion] of heldOut) if ((await greedy(adapter, prompt, 4)) === completion) hits++;
  return hits / heldOut.length;
}

const methods: [string, TrainMethod, number][] = [
  [
    'LoRA r=8 on all four projections',
    { kind: 'lora', r: 8, alpha: 16, dropout: 0.05, targetModules: ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'] },
    1e-2,
  ],
  ['last_layers=1', { kind: 'last_layers', numLayers: 1 }, 3e-3],
];

for (const [label, method, learningRate] of methods) {
  test(`${label} learns to reverse strings: held-out loss falls and greedy exact match beats the base model`, async (t) => {
    const base = await evaluateLoss(TINY, weights, validation, { padId: EOS });
    const baseMatch = await exactMatch(undefined);
    const evalLosses: number[] = [];
    const result = await train({
      config: TINY,
      weights,
      method,
      train: trainSet,
      validation,
      padId: EOS,
      hyperparameters: { maxSteps: 200, batchSize: 16, learningRate, warmupSteps: 10, evalIntervalSteps: 50, seed: 1 },
      callbacks: { onEvaluation: (e) => void evalLosses.push(e.loss) },
    });
    assert.equal(result.status, 'completed');
    assert.equal(result.steps, 200);
    const trained = await exactMatch(result.adapter);
    disposeAdapter(result.adapter);
    const final = result.evaluation!;
    t.diagnostic(
      `held-out loss ${base.loss.toFixed(3)} -> ${final.loss.toFixed(3)}, ` +
        `exact match ${baseMatch} -> ${trained}, ${result.trainSeconds.toFixed(1)} s`,
    );
    assert.equal(evalLosses.length, 4);
    assert.ok(final.loss < 0.3 * base.loss, `held-out loss ${base.loss.toFixed(3)} -> ${final.loss.toFixed(3)}`);
    assert.ok(final.tokenAccuracy > 0.9, `token accuracy ${final.tokenAccuracy}`);
    assert.equal(baseMatch, 0);
    assert.ok(trained >= 0.8, `held-out exact match ${trained} (base ${baseMatch})`);
  });
}

test('the training fixtures are freed', () => {
  disposeWeights(weights);
  assert.equal(tf.memory().numTensors, 0);
});
