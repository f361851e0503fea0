import * as tf from '@tensorflow/tfjs';
import type { GptConfig } from './gpt-config.js';
import { hfTensorShapes } from './gpt-config.js';

/** A Conv1D-style projection: y = x @ weight + bias, weight stored [in, out] as in Hugging Face GPT-2. */
export interface Linear {
  weight: tf.Tensor2D;
  bias: tf.Tensor1D;
  /**
   * weight transposed ([out, in]), present only on frozen weights during
   * training: it lets the backward pass avoid a transposeB matMul, which is
   * about 10x slower than a plain one on the wasm backend.
   */
  weightT?: tf.Tensor2D;
}

export interface LayerNormWeights {
  weight: tf.Tensor1D;
  bias: tf.Tensor1D;
}

/** One transformer block, fields named after Hugging Face's modules. */
export interface BlockWeights {
  ln_1: LayerNormWeights;
  c_attn: Linear;
  attn_c_proj: Linear;
  ln_2: LayerNormWeights;
  c_fc: Linear;
  mlp_c_proj: Linear;
}

/** All weights of a GPT-2 model, resident on the active backend. */
export interface GptWeights {
  /** Token embeddings [vocab, d]; also the tied LM head. */
  wte: tf.Tensor2D;
  /** wte transposed [d, vocab]: the LM head as a plain (fast) matMul. */
  wteT: tf.Tensor2D;
  /** Position embeddings [n_positions, d]. */
  wpe: tf.Tensor2D;
  blocks: BlockWeights[];
  ln_f: LayerNormWeights;
}

/** Host-side arrays by Hugging Face name, as checkpoints hold them. */
export type HostTensors = Map<string, { shape: number[]; data: Float32Array }>;

/** Uploads a checkpoint's arrays to the backend. The caller owns the result (see disposeWeights). */
export function weightsFromHost(config: GptConfig, host: HostTensors): GptWeights {
  const t = (name: string): tf.Tensor => {
    const h = host.get(name);
    if (!h) throw new Error(`missing tensor \`${name}\``);
    return tf.tensor(h.data, h.shape, 'float32');
  };
  const lin = (p: string): Linear => ({ weight: t(`${p}.weight`) as tf.Tensor2D, bias: t(`${p}.bias`) as tf.Tensor1D });
  const ln = (p: string): LayerNormWeights => ({ weight: t(`${p}.weight`) as tf.Tensor1D, bias: t(`${p}.bias`) as tf.Tensor1D });
  const wte = t('wte.weight') as tf.Tensor2D;
  const blocks: BlockWeights[] = [];
  for (let i = 0; i < config.nLayer; i++) {
    blocks.push({
      ln_1: ln(`h.${i}.ln_1`),
      c_attn: lin(`h.${i}.attn.c_attn`),
      attn_c_proj: lin(`h.${i}.attn.c_proj`),
      ln_2: ln(`h.${i}.ln_2`),
      c_fc: lin(`h.${i}.mlp.c_fc`),
      mlp_c_proj: lin(`h.${i}.mlp.c_proj`),
    });
  }
  return { wte, wteT: tf.transpose(wte), wpe: t('wpe.weight') as tf.Tensor2D, blocks, ln_f: ln('ln_f') };
}

/** Hugging Face name -> tensor for every weight (wteT excluded: it is derived). */
export function namedWeights(weights: GptWeights): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>([
    ['wte.weight', weights.wte],
    ['wpe.weight', weights.wpe],
  ]);
  weights.blocks.forEach((b, i) => {
    for (const [name, value] of Object.entries(blockNamed(b))) out.set(`h.${i}.${name}`, value);
  });
  out.set('ln_f.weight', weights.ln_f.weight);
  out.set('ln_f.bias', weights.ln_f.bias);
  return out;
}

/** A block's tensors by their Hugging Face names relative to `h.{i}.`. */
export function blockNamed(b: BlockWeights): Record<string, tf.Tensor> {
  return {
    'ln_1.weight': b.ln_1.weight,
    'ln_1.bias': b.ln_1.bias,
    'attn.c_attn.weight': b.c_attn.weight,
    'attn.c_attn.bias': b.c_attn.bias,
    'attn.c_proj.weight': b.attn_c_proj.weight,
    'attn.c_proj.bias': b.attn_c_proj.bias,
    'ln_2.weight': b.ln_2.weight,
    'ln_2.bias': b.ln_2.bias,
    'mlp.c_fc.weight': b.c_fc.weight,
    'mlp.c_fc.bias': b.c_fc.bias,
    'mlp.c_proj.weight': b.mlp_c_proj.weight,
    'mlp.c_proj.bias': b.mlp_c_proj.bias,
  };
}

/** Reads every weight back to the host (await data(), never dataSync). */
export async function weightsToHost(weights: GptWeights): Promise<HostTensors> {
  const out: HostTensors = new Map();
  for (const [name, t] of namedWeights(weights)) {
    out.set(name, { shape: t.shape.slice(), data: (await t.data()) as Float32Array });
  }
  return out;
}

/** Frees every tensor of the weights, derived ones included. */
export function disposeWeights(weights: GptWeights): void {
  for (const t of namedWeights(weights).values()) t.dispose();
  weights.wteT.dispose();
  for (const b of weights.blocks) {
    for (const l of [b.c_attn, b.attn_c_proj, b.c_fc, b.mlp_c_proj]) l.weightT?.dispose();
  }
}

/** Number of parameters (tied LM head counted once). */
export function parameterCount(config: GptConfig): number {
  let n = 0;
  for (const shape of hfTensorShapes(config).values()) n += shape.reduce((a, b) => a * b, 1);
  return n;
}
