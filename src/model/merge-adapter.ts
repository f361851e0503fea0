import * as tf from '@tensorflow/tfjs';
import { InvalidArgument } from '../common/errors.js';
import { type BlockWeights, type Gpt2Weights, gpt2Weights, type GptWeights, type Linear } from './gpt-weights.js';
import { LORA_TARGETS, type LoraTarget, type LoraWeights } from './lora.js';

/**
 * Folding one LoRA adapter into the base weights, so that a server with a single
 * adapter pays nothing per token for it: W' = W + scale * A^T B^T, which in our
 * [in, out] layout is W + scale * (a @ b), what PEFT's `merge()` does to a Conv1D
 * weight (fan_in_fan_out). Unmerging subtracts the same product, recomputed
 * identically, so W comes back up to one float32 rounding of W'.
 */

/** Weights with an adapter merged in (or out), and how to free what that created. */
export interface MergedWeights {
  /** Shares every tensor the adapter does not touch with the input weights. */
  weights: Gpt2Weights;
  /**
   * Frees the tensors the merge created (adapted projection weights and their
   * transposes), never the shared ones; do not call disposeWeights on `weights`.
   */
  dispose(): void;
}

const FIELD: Record<LoraTarget, 'c_attn' | 'attn_c_proj' | 'c_fc' | 'mlp_c_proj'> = {
  'attn.c_attn': 'c_attn',
  'attn.c_proj': 'attn_c_proj',
  'mlp.c_fc': 'c_fc',
  'mlp.c_proj': 'mlp_c_proj',
};

/**
 * New weights equal to `base` with `lora` merged in; `base` and `lora` are not
 * modified. Forward passes on the result without segments give what forward on
 * `base` with the adapter in a segment gives (up to float error).
 * @throws InvalidArgument if a module of the adapter does not fit the weights;
 *   FailedPrecondition for a Llama-family model.
 */
export function mergeLora(base: GptWeights, lora: LoraWeights): MergedWeights {
  return applyLora(base, lora, 1);
}

/**
 * The inverse of {@link mergeLora}: new weights equal to `merged` with `lora`
 * subtracted, which restores the base weights up to float error.
 * @throws InvalidArgument if a module of the adapter does not fit the weights.
 */
export function unmergeLora(merged: GptWeights, lora: LoraWeights): MergedWeights {
  return applyLora(merged, lora, -1);
}

function applyLora(model: GptWeights, lora: LoraWeights, sign: 1 | -1): MergedWeights {
  const weights = gpt2Weights(model, 'merging a LoRA adapter');
  const plan: { layer: number; field: (typeof FIELD)[LoraTarget]; lin: Linear; a: tf.Tensor2D; b: tf.Tensor2D }[] = [];
  for (const [key, m] of lora.modules) {
    const dot = key.indexOf('.');
    const layer = Number(key.slice(0, dot));
    const target = key.slice(dot + 1) as LoraTarget;
    if (!Number.isInteger(layer) || !LORA_TARGETS.includes(target)) throw new InvalidArgument(`adapter: malformed module key \`${key}\``);
    if (layer < 0 || layer >= weights.blocks.length) {
      const note = `(the model has ${weights.blocks.length} layers)`;
      throw new InvalidArgument(`adapter: module \`${key}\`: layer ${layer} is out of range ${note}`);
    }
    const lin = weights.blocks[layer][FIELD[target]];
    const [din, dout] = lin.weight.shape;
    if (m.a.shape[0] !== din || m.b.shape[1] !== dout || m.a.shape[1] !== m.b.shape[0]) {
      const fit = `which do not fit a [${din},${dout}] weight`;
      throw new InvalidArgument(`adapter: module \`${key}\` has a [${m.a.shape}] and b [${m.b.shape}], ${fit}`);
    }
    plan.push({ layer, field: FIELD[target], lin, a: m.a, b: m.b });
  }
  const created: tf.Tensor[] = [];
  const blocks: BlockWeights[] = weights.blocks.map((b) => ({ ...b }));
  for (const { layer, field, lin, a, b } of plan) {
    const weight = tf.tidy(() => tf.add(lin.weight, tf.matMul(a, b).mul(sign * lora.scale)) as tf.Tensor2D);
    // A frozen weight's precomputed transpose must follow the new weight (see Linear).
    const weightT = lin.weightT ? tf.transpose(weight) : undefined;
    created.push(weight, ...(weightT ? [weightT] : []));
    blocks[layer][field] = { weight, bias: lin.bias, ...(weightT ? { weightT } : {}) };
  }
  return {
    weights: { ...weights, blocks },
    dispose: () => {
      for (const t of created) t.dispose();
    },
  };
}
