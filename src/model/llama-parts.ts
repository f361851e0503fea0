import * as tf from '@tensorflow/tfjs';
import type { LlamaConfig } from './llama-config.js';
import type { LlamaBlockWeights, LlamaWeights, RmsNormWeights } from './llama-weights.js';
import type { DecoderParts, Project } from './decoder-parts.js';
import { rmsNorm, swiGlu } from './layers.js';
import { matMul } from './matmul.js';
import { applyRotary, rotaryTables } from './rotary.js';

/** Options of the Llama family's parts: a `last_layers` adapter's layers and final norm. */
export interface LlamaPartsOptions {
  blockOverrides?: Map<number, LlamaBlockWeights>;
  norm?: RmsNormWeights;
}

/**
 * The Llama family (modeling_llama.py; Mistral, Qwen2 and Qwen3 by config):
 * RMSNorm, rotary positions on q and k, grouped-query attention, q/k/v biases
 * where the config has them, Qwen3's per-head q_norm/k_norm before the
 * rotation, SwiGLU MLP, tied or separate LM head. `positions` are the rows'
 * position ids, for the rotary tables.
 */
export function llamaParts(
  config: LlamaConfig,
  weights: LlamaWeights,
  positions: Int32Array,
  project: Project,
  options: LlamaPartsOptions = {},
): DecoderParts {
  const { nHead, nKvHead, headDim, rmsNormEps: eps } = config;
  const rope = rotaryTables(config, positions);
  const blk = (i: number) => options.blockOverrides?.get(i) ?? weights.blocks[i];
  // [rows, heads * headDim] -> [rows, heads, headDim], optionally normalised per head, rotated, and back.
  const encode = (x: tf.Tensor2D, heads: number, norm: { weight: tf.Tensor1D } | undefined): tf.Tensor2D => {
    let h = tf.reshape(x, [-1, heads, headDim]) as tf.Tensor3D;
    if (norm) h = rmsNorm(h, norm, eps);
    return tf.reshape(applyRotary(h, rope), [-1, heads * headDim]) as tf.Tensor2D;
  };
  return {
    embed: (ids) => tf.gather(weights.embed_tokens, ids),
    attnNorm: (i, x) => rmsNorm(x, blk(i).input_layernorm, eps),
    qkv: (i, h) => {
      const a = blk(i).self_attn;
      return {
        q: encode(project(h, a.q_proj, `${i}.self_attn.q_proj`), nHead, a.q_norm),
        k: encode(project(h, a.k_proj, `${i}.self_attn.k_proj`), nKvHead, a.k_norm),
        v: project(h, a.v_proj, `${i}.self_attn.v_proj`),
      };
    },
    attnOut: (i, y) => project(y, blk(i).self_attn.o_proj, `${i}.self_attn.o_proj`),
    mlpNorm: (i, x) => rmsNorm(x, blk(i).post_attention_layernorm, eps),
    mlp: (i, h) => {
      const m = blk(i).mlp;
      const gated = swiGlu(project(h, m.gate_proj, `${i}.mlp.gate_proj`), project(h, m.up_proj, `${i}.mlp.up_proj`));
      return project(gated, m.down_proj, `${i}.mlp.down_proj`);
    },
    finalNorm: (x) => rmsNorm(x, options.norm ?? weights.norm, eps),
    lmHead: (x) => matMul(x, weights.lmHeadT),
  };
}
