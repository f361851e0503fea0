import * as tf from '@tensorflow/tfjs';
import type { Gpt2Config } from './gpt-config.js';
import type { BlockWeights, Gpt2Weights, LayerNormWeights } from './gpt-weights.js';
import type { DecoderParts, Project } from './decoder-parts.js';
import { gelu, layerNorm } from './layers.js';
import { embed, matMul, matMulFrozen, recordingGradients } from './matmul.js';
import { hostEmbed } from './kernels/host-kernels.js';
import { onHostBackend } from './kernels/host-memory.js';

/** Options of GPT-2's parts: a `last_layers` adapter's blocks and final norm, and embedding training. */
export interface Gpt2PartsOptions {
  blockOverrides?: Map<number, BlockWeights>;
  lnF?: LayerNormWeights;
  trainEmbeddings?: boolean;
}

/** GPT-2: learned positions, LayerNorm, fused c_attn, GELU MLP, LM head tied to wte. */
export function gpt2Parts(config: Gpt2Config, weights: Gpt2Weights, project: Project, options: Gpt2PartsOptions = {}): DecoderParts {
  const eps = config.layerNormEpsilon;
  const blk = (i: number) => options.blockOverrides?.get(i) ?? weights.blocks[i];
  return {
    embed: (ids, pos) => {
      if (options.trainEmbeddings) return tf.add(embed(weights.wte, ids), embed(weights.wpe, pos)) as tf.Tensor2D;
      // Inference on wasm/cpu: one kernel instead of two gathers and an add (see host-kernels.ts).
      if (!recordingGradients() && onHostBackend()) return hostEmbed(weights.wte, weights.wpe, ids, pos);
      return tf.add(tf.gather(weights.wte, ids), tf.gather(weights.wpe, pos)) as tf.Tensor2D;
    },
    attnNorm: (i, x) => layerNorm(x, blk(i).ln_1, eps),
    qkv: (i, h) => ({ fused: project(h, blk(i).c_attn, `${i}.attn.c_attn`) }),
    attnOut: (i, y) => project(y, blk(i).attn_c_proj, `${i}.attn.c_proj`),
    mlpNorm: (i, x) => layerNorm(x, blk(i).ln_2, eps),
    mlp: (i, h) => {
      const m = gelu(project(h, blk(i).c_fc, `${i}.mlp.c_fc`), config.activationFunction);
      return project(m, blk(i).mlp_c_proj, `${i}.mlp.c_proj`);
    },
    finalNorm: (x) => layerNorm(x, options.lnF ?? weights.ln_f, eps),
    lmHead: (x) => lmHead(x, weights, options.trainEmbeddings ?? false),
  };
}

/** Logits [rows, vocab] from final hidden states, through the LM head tied to wte. */
export function lmHead(x: tf.Tensor2D, weights: Gpt2Weights, trainEmbeddings = false): tf.Tensor2D {
  // Frozen: wteT is the precomputed transpose. Trained: derive it in the graph so the gradient reaches wte.
  return trainEmbeddings ? matMul(x, tf.transpose(weights.wte) as tf.Tensor2D) : matMulFrozen(x, weights.wteT, weights.wte);
}
