import * as tf from '@tensorflow/tfjs';
import { InvalidArgument } from '../common/errors.js';
import type { DecoderBlockWeights, GptWeights, Projection } from './gpt-weights.js';
import { familyModules } from './family-modules.js';
import type { LoraTarget, LoraWeights } from './lora.js';

/**
 * Folding one LoRA adapter into the base weights, so that a server with a single
 * adapter pays nothing per token for it: W' = W + scale * A^T B^T, which in our
 * [in, out] layout is W + scale * (a @ b), what PEFT's `merge()` does to a Conv1D
 * weight (fan_in_fan_out) and, transposed, to an nn.Linear one (the Llama
 * family's [out, in] weights gain scale * B A). Unmerging subtracts the same
 * product, recomputed identically, so W comes back up to one float32 rounding of W'.
 */

/** Weights with an adapter merged in (or out), and how to free what that created. */
export interface MergedWeights<W extends GptWeights = GptWeights> {
  /** Shares every tensor the adapter does not touch with the input weights (of their family). */
  weights: W;
  /**
   * Frees the tensors the merge created (adapted projection weights and their
   * transposes), never the shared ones; do not call disposeWeights on `weights`.
   */
  dispose(): void;
}

/**
 * New weights equal to `base` with `lora` merged in; `base` and `lora` are not
 * modified. Forward passes on the result without segments give what forward on
 * `base` with the adapter in a segment gives (up to float error).
 * @throws InvalidArgument if a module of the adapter is not one of the model's
 *   family or does not fit the weights.
 */
export function mergeLora<W extends GptWeights>(base: W, lora: LoraWeights): MergedWeights<W> {
  return applyLora(base, lora, 1);
}

/**
 * The inverse of {@link mergeLora}: new weights equal to `merged` with `lora`
 * subtracted, which restores the base weights up to float error.
 * @throws InvalidArgument if a module of the adapter does not fit the weights.
 */
export function unmergeLora<W extends GptWeights>(merged: W, lora: LoraWeights): MergedWeights<W> {
  return applyLora(merged, lora, -1);
}

function applyLora<W extends GptWeights>(weights: W, lora: LoraWeights, sign: 1 | -1): MergedWeights<W> {
  const family = familyModules(weights);
  const plan: { layer: number; target: LoraTarget; lin: Projection; a: tf.Tensor2D; b: tf.Tensor2D }[] = [];
  for (const [key, m] of lora.modules) {
    const dot = key.indexOf('.');
    const layer = Number(key.slice(0, dot));
    const target = key.slice(dot + 1) as LoraTarget;
    if (!Number.isInteger(layer) || !family.targets.includes(target)) {
      throw new InvalidArgument(`adapter: malformed module key \`${key}\` (not a module of a ${family.label} model)`);
    }
    if (layer < 0 || layer >= weights.blocks.length) {
      const note = `(the model has ${weights.blocks.length} layers)`;
      throw new InvalidArgument(`adapter: module \`${key}\`: layer ${layer} is out of range ${note}`);
    }
    const lin = family.projection(weights.blocks[layer], target);
    const [din, dout] = lin.weight.shape;
    if (m.a.shape[0] !== din || m.b.shape[1] !== dout || m.a.shape[1] !== m.b.shape[0]) {
      const fit = `which do not fit a [${din},${dout}] weight`;
      throw new InvalidArgument(`adapter: module \`${key}\` has a [${m.a.shape}] and b [${m.b.shape}], ${fit}`);
    }
    plan.push({ layer, target, lin, a: m.a, b: m.b });
  }
  const created: tf.Tensor[] = [];
  const blocks: DecoderBlockWeights[] = [...weights.blocks];
  for (const { layer, target, lin, a, b } of plan) {
    const weight = tf.tidy(() => tf.add(lin.weight, tf.matMul(a, b).mul(sign * lora.scale)) as tf.Tensor2D);
    // A frozen weight's precomputed transpose must follow the new weight (see Projection).
    const weightT = lin.weightT ? tf.transpose(weight) : undefined;
    created.push(weight, ...(weightT ? [weightT] : []));
    blocks[layer] = family.withProjection(blocks[layer], target, { weight, ...(lin.bias ? { bias: lin.bias } : {}), ...(weightT ? { weightT } : {}) });
  }
  return {
    weights: { ...weights, blocks } as W, // each block replaced by one of its own family (withProjection)
    dispose: () => {
      for (const t of created) t.dispose();
    },
  };
}
