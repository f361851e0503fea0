/**
 * A few LoRA steps of `train()` on the tiny model, with every number a
 * comparison between backends needs. Imported by the webgpu suite; run as a
 * script (GENTUNE_TEST_BACKEND=wasm) it prints the same run's result as JSON,
 * the reference the webgpu run is held to.
 */
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../src/common/rng.js';
import { disposeAdapter } from '../../src/model/adapter.js';
import { disposeWeights } from '../../src/model/gpt-weights.js';
import type { TokenSequence } from '../../src/training/data/token-sequence.js';
import { train } from '../../src/training/trainer.js';
import { testBackend, TINY, tinyWeights } from '../helpers/tiny-model.js';

export interface LoraStepsResult {
  backend: string;
  losses: number[];
  gradNorms: number[];
  /** tf.memory().numTensors after each step. */
  tensorsPerStep: number[];
  tensorsBefore: number;
  tensorsAfter: number;
  trainableParameters: number;
}

/** 8 random sequences of 12 tokens, the last 7 of each loss targets. */
function sequences(): TokenSequence[] {
  const rng = new Rng(11);
  return Array.from({ length: 8 }, () => {
    const ids = Int32Array.from({ length: 12 }, () => rng.int(256));
    const lossMask = new Uint8Array(12).fill(1, 5);
    return { ids, lossMask };
  });
}

/**
 * `steps` optimizer steps, LoRA r=4 on attn.c_attn and mlp.c_fc of both
 * layers (8 trainable tensors), batch 4 with 2 micro-batches, no dropout (its
 * masks come from each backend's own RNG kernel).
 */
export async function loraSteps(steps = 3): Promise<LoraStepsResult> {
  const backend = await testBackend();
  const weights = tinyWeights(TINY, 3);
  const before = tf.memory().numTensors;
  const losses: number[] = [];
  const gradNorms: number[] = [];
  const tensorsPerStep: number[] = [];
  const result = await train({
    config: TINY,
    weights,
    method: { kind: 'lora', r: 4, alpha: 8, dropout: 0, targetModules: ['attn.c_attn', 'mlp.c_fc'] },
    train: sequences(),
    padId: 256,
    hyperparameters: { maxSteps: steps, batchSize: 4, gradientAccumulationSteps: 2, learningRate: 5e-3, warmupSteps: 1, seed: 5 },
    callbacks: {
      onProgress: (e) => {
        losses.push(e.loss);
        gradNorms.push(e.gradNorm);
        tensorsPerStep.push(tf.memory().numTensors);
      },
    },
  });
  const trainableParameters = result.trainableParameters;
  disposeAdapter(result.adapter);
  const after = tf.memory().numTensors;
  disposeWeights(weights);
  return { backend, losses, gradNorms, tensorsPerStep, tensorsBefore: before, tensorsAfter: after, trainableParameters };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.stdout.write(`RESULT ${JSON.stringify(await loraSteps(Number(process.argv[2] ?? 3)))}\n`);
}
