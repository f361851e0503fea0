import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../common/rng.js';
import type { GptConfig } from '../model/gpt-config.js';
import { forward } from '../model/gpt.js';
import type { LoraTrainingOptions } from '../model/lora.js';
import type { AdamW } from './adamw.js';
import { adapterForwardOptions, forwardInputOf } from './batch-input.js';
import type { Batch } from './data/collate.js';
import { clipByGlobalNorm } from './grad-clip.js';
import { gatherRows, lmHeadCrossEntropy, lossRows, type HeadLossOptions, type LossRows } from './sft-loss.js';
import type { Trainable } from './trainable.js';

/** What a step's gradients need besides its batches. */
export interface GradientContext {
  config: GptConfig;
  trainable: Trainable;
  /** Source of LoRA dropout seeds (part of the resumable state). */
  dropoutRng: Rng;
  head?: HeadLossOptions;
}

/** What one optimizer step needs besides its batches. */
export interface StepContext extends GradientContext {
  optimizer: AdamW;
  /** Global gradient-norm clip; <= 0 turns clipping off. */
  maxGradNorm: number;
}

/** Host-side facts of a step, known before any compute. */
export interface StepTokens {
  /** Loss tokens (sum of loss weights) over all micro-batches. */
  lossTokens: number;
  /** Non-pad input tokens over all micro-batches. */
  inputTokens: number;
}

/** Counts a step's tokens. */
export function stepTokens(microBatches: readonly Batch[]): StepTokens {
  let lossTokens = 0;
  let inputTokens = 0;
  for (const b of microBatches) {
    lossTokens += b.tokenCount;
    for (const m of b.attentionMask) inputTokens += m;
  }
  return { lossTokens, inputTokens };
}

/**
 * One optimizer step over `microBatches` (gradient accumulation): each
 * micro-batch's loss is its weighted token sum divided by the loss tokens of
 * the whole step, so the accumulated gradient is exactly that of one batch
 * holding them all. Then global-norm clipping, then AdamW at `lr`.
 *
 * Returns a [2] tensor `[loss, gradNorm]` (mean loss per loss token, in nats;
 * norm before clipping) for the caller's single readback; the caller frees it.
 * A step without loss tokens changes nothing and returns [0, 0].
 */
export function optimizerStep(ctx: StepContext, microBatches: readonly Batch[], lr: number): tf.Tensor1D {
  const step = stepGradients(ctx, microBatches);
  if (!step) return tf.zeros([2]);
  const { grads, norm } = clipByGlobalNorm(step.grads, ctx.maxGradNorm);
  tf.dispose(step.grads);
  ctx.optimizer.step(grads, lr);
  tf.dispose(grads);
  const out = tf.stack([step.loss, norm]) as tf.Tensor1D;
  tf.dispose([step.loss, norm]);
  return out;
}

/**
 * The loss of a step's micro-batches (mean per loss token over all of them,
 * nats) and its gradient for each trainable parameter, in parameter order,
 * before clipping; null when the step has no loss tokens. The caller frees
 * the tensors.
 */
export function stepGradients(ctx: GradientContext, microBatches: readonly Batch[]): { loss: tf.Scalar; grads: tf.Tensor[] } | null {
  const selections = microBatches.map(lossRows);
  const normalizer = selections.reduce((n, s) => n + s.weightSum, 0);
  if (normalizer === 0) return null;
  const variables = ctx.trainable.params.map((p) => p.variable);
  let sumGrads: tf.Tensor[] | undefined;
  let sumLoss: tf.Tensor | undefined;
  microBatches.forEach((batch, i) => {
    if (selections[i].rows.length === 0) return;
    const { value, grads } = tf.variableGrads(() => microBatchLoss(ctx, batch, selections[i], normalizer), variables);
    const ordered = variables.map((v) => grads[v.name] ?? tf.zerosLike(v));
    sumLoss = accumulate(sumLoss, value);
    sumGrads = sumGrads ? sumGrads.map((acc, k) => accumulate(acc, ordered[k])) : ordered;
  });
  return { loss: sumLoss! as tf.Scalar, grads: sumGrads! };
}

/** a + b, freeing both; a may be absent. */
function accumulate(a: tf.Tensor | undefined, b: tf.Tensor): tf.Tensor {
  if (!a) return b;
  const sum = tf.add(a, b);
  a.dispose();
  b.dispose();
  return sum;
}

function microBatchLoss(ctx: GradientContext, batch: Batch, sel: LossRows, normalizer: number): tf.Scalar {
  const { trainable } = ctx;
  const method = trainable.method;
  const loraTraining: LoraTrainingOptions | undefined =
    method.kind === 'lora' && method.dropout > 0
      ? { dropout: method.dropout, nextSeed: () => ctx.dropoutRng.int(0x7fffffff) }
      : undefined;
  const hidden = forward(ctx.config, trainable.weights, forwardInputOf(batch), {
    ...adapterForwardOptions(trainable.live, batch.size, loraTraining),
    output: 'hidden',
  });
  const picked = gatherRows(hidden, tf.tensor1d(sel.rows, 'int32'));
  const targets = tf.tensor1d(sel.targets, 'int32');
  return lmHeadCrossEntropy(picked, trainable.head, targets, tf.tensor1d(sel.weights), normalizer, ctx.head);
}
