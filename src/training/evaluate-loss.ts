import * as tf from '@tensorflow/tfjs';
import { InvalidArgument } from '../common/errors.js';
import type { Adapter } from '../model/adapter.js';
import type { GptConfig } from '../model/gpt-config.js';
import { type GptWeights, lmHeadTransposed } from '../model/gpt-weights.js';
import { forward } from '../model/gpt.js';
import { evaluationBatches } from './data/batcher.js';
import type { TokenSequence } from './data/token-sequence.js';
import { adapterForwardOptions, forwardInputOf } from './batch-input.js';
import { lmHeadEvalSums, lossRows, type HeadLossOptions } from './sft-loss.js';

/** Teacher-forced scores of a model over sequences. */
export interface LossEvaluation {
  /** Mean cross-entropy per loss token, in nats. */
  loss: number;
  /** exp(loss). */
  perplexity: number;
  /** Share of loss tokens whose argmax prediction is the target, in [0, 1]. */
  tokenAccuracy: number;
  /** Loss tokens scored (sum of loss weights). */
  tokens: number;
}

/** Options of {@link evaluateLoss}. */
export interface EvaluateLossOptions extends HeadLossOptions {
  /** Applied to every sequence; absent = the bare base model. */
  adapter?: Adapter;
  /** Sequences per forward pass (default 8). */
  batchSize?: number;
  /** Token id for padding (GPT-2: EOS). */
  padId: number;
}

/**
 * Loss, perplexity and token accuracy of the base model (plus an optional
 * adapter) over `sequences`, teacher forcing, no gradients. Only positions
 * whose loss mask is set count, weighted by it (the SFT training loss, on
 * other data). Sums stay on the backend until one readback at the end.
 */
export async function evaluateLoss(
  config: GptConfig,
  weights: GptWeights,
  sequences: readonly TokenSequence[],
  options: EvaluateLossOptions,
): Promise<LossEvaluation> {
  const head = { wteT: lmHeadTransposed(weights) };
  let sums: tf.Tensor1D = tf.zeros([2]);
  let tokens = 0;
  try {
    for (const batch of evaluationBatches(sequences, options.batchSize ?? 8, options.padId)) {
      const sel = lossRows(batch);
      if (sel.rows.length === 0) continue;
      tokens += sel.weightSum;
      const next = tf.tidy(() => {
        const hidden = forward(config, weights, forwardInputOf(batch), {
          ...adapterForwardOptions(options.adapter, batch.size),
          output: 'hidden',
        });
        const picked = tf.gather(hidden, tf.tensor1d(sel.rows, 'int32')) as tf.Tensor2D;
        const batchSums = lmHeadEvalSums(picked, head, tf.tensor1d(sel.targets, 'int32'), tf.tensor1d(sel.weights), options);
        return tf.add(sums, batchSums) as tf.Tensor1D;
      });
      sums.dispose();
      sums = next;
    }
    if (tokens === 0) throw new InvalidArgument('the evaluation set has no loss tokens');
    const [lossSum, correct] = await sums.data();
    const loss = lossSum / tokens;
    return { loss, perplexity: Math.exp(loss), tokenAccuracy: correct / tokens, tokens };
  } finally {
    sums.dispose();
  }
}
