import * as tf from '@tensorflow/tfjs';
import type { LlamaConfig } from './llama-config.js';
import type { HostTensors, Projection } from './projection.js';

/** An RMSNorm's gain. */
export interface RmsNormWeights {
  weight: tf.Tensor1D;
}

/** One decoder layer, fields named after Hugging Face's LlamaDecoderLayer modules. */
export interface LlamaBlockWeights {
  input_layernorm: RmsNormWeights;
  self_attn: {
    q_proj: Projection;
    k_proj: Projection;
    v_proj: Projection;
    o_proj: Projection;
    /** Qwen3 only: RMSNorm gains [head_dim] for each query and key head. */
    q_norm?: RmsNormWeights;
    k_norm?: RmsNormWeights;
  };
  post_attention_layernorm: RmsNormWeights;
  mlp: { gate_proj: Projection; up_proj: Projection; down_proj: Projection };
}

/** All weights of a Llama-family model, resident on the active backend. */
export interface LlamaWeights {
  family: 'llama';
  /** Token embeddings [vocab, d]. */
  embed_tokens: tf.Tensor2D;
  /** The LM head as a plain matMul, [d, vocab]: embed_tokens transposed when tied, else lm_head.weight transposed. */
  lmHeadT: tf.Tensor2D;
  blocks: LlamaBlockWeights[];
  /** The final RMSNorm (`model.norm`). */
  norm: RmsNormWeights;
}

/**
 * Uploads a Llama-family checkpoint (names as llamaTensorShapes gives them).
 * nn.Linear weights [out, in] are stored transposed, [in, out]: every
 * projection is then a plain matMul, which on wasm runs about 12x faster
 * than a transposeB one. The caller owns the result.
 */
export function llamaWeightsFromHost(config: LlamaConfig, host: HostTensors): LlamaWeights {
  const blocks = Array.from({ length: config.nLayer }, (_, i) => llamaBlockFromHost(config, host, i));
  const embed = hostArray(host, 'model.embed_tokens.weight');
  const embed_tokens = tf.tensor2d(embed.data, embed.shape as [number, number]);
  const lmHeadT = config.tieWordEmbeddings ? tf.transpose(embed_tokens) : transposedFromHost(host, 'lm_head.weight');
  return { family: 'llama', embed_tokens, lmHeadT, blocks, norm: rmsNormFromHost(host, 'model.norm') };
}

function hostArray(host: HostTensors, name: string) {
  const h = host.get(name);
  if (!h) throw new Error(`missing tensor \`${name}\``);
  return h;
}

/** An nn.Linear weight [out, in] uploaded as [in, out]. */
function transposedFromHost(host: HostTensors, name: string): tf.Tensor2D {
  const h = hostArray(host, name);
  return tf.tidy(() => tf.transpose(tf.tensor2d(h.data, h.shape as [number, number])));
}

/** Uploads the RMSNorm gain `${prefix}.weight`. */
export function rmsNormFromHost(host: HostTensors, prefix: string): RmsNormWeights {
  return { weight: tf.tensor1d(hostArray(host, `${prefix}.weight`).data) };
}

/** Uploads layer `layer` of a Llama-family checkpoint (tensors `model.layers.{layer}.…`), projections transposed. */
export function llamaBlockFromHost(config: LlamaConfig, host: HostTensors, layer: number): LlamaBlockWeights {
  const linear = (p: string): Projection => ({
    weight: transposedFromHost(host, `${p}.weight`),
    ...(host.has(`${p}.bias`) ? { bias: tf.tensor1d(hostArray(host, `${p}.bias`).data) } : {}),
  });
  const norm = (p: string) => rmsNormFromHost(host, p);
  const p = `model.layers.${layer}.`;
  return {
    input_layernorm: norm(`${p}input_layernorm`),
    self_attn: {
      q_proj: linear(`${p}self_attn.q_proj`),
      k_proj: linear(`${p}self_attn.k_proj`),
      v_proj: linear(`${p}self_attn.v_proj`),
      o_proj: linear(`${p}self_attn.o_proj`),
      ...(config.qkNorm ? { q_norm: norm(`${p}self_attn.q_norm`), k_norm: norm(`${p}self_attn.k_norm`) } : {}),
    },
    post_attention_layernorm: norm(`${p}post_attention_layernorm`),
    mlp: { gate_proj: linear(`${p}mlp.gate_proj`), up_proj: linear(`${p}mlp.up_proj`), down_proj: linear(`${p}mlp.down_proj`) },
  };
}

/** Every tensor of the weights, derived ones included. */
export function llamaWeightTensors(weights: LlamaWeights): tf.Tensor[] {
  const out: tf.Tensor[] = [weights.embed_tokens, weights.lmHeadT, weights.norm.weight];
  const linear = (l: Projection): tf.Tensor[] => [l.weight, ...(l.bias ? [l.bias] : []), ...(l.weightT ? [l.weightT] : [])];
  for (const b of weights.blocks) {
    const a = b.self_attn;
    out.push(b.input_layernorm.weight, b.post_attention_layernorm.weight);
    for (const l of [a.q_proj, a.k_proj, a.v_proj, a.o_proj, b.mlp.gate_proj, b.mlp.up_proj, b.mlp.down_proj]) out.push(...linear(l));
    if (a.q_norm) out.push(a.q_norm.weight);
    if (a.k_norm) out.push(a.k_norm.weight);
  }
  return out;
}

/** Frees every tensor of the weights. */
export function disposeLlamaWeights(weights: LlamaWeights): void {
  for (const t of llamaWeightTensors(weights)) t.dispose();
}
