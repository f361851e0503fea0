import * as tf from '@tensorflow/tfjs';
import { ResourceExhausted } from '../common/errors.js';
import type { Gpt2Config, GptConfig, LlamaConfig } from './gpt-config.js';
import { hfTensorShapes } from './gpt-config.js';
import type { HostTensors, Projection } from './projection.js';
import { disposeLlamaWeights, type LlamaBlockWeights, type LlamaWeights, llamaWeightsFromHost, type RmsNormWeights } from './llama-weights.js';

/** A projection with a bias, as all of GPT-2's are. */
export interface Linear extends Projection {
  bias: tf.Tensor1D;
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
export interface Gpt2Weights {
  /** GPT-2 when absent too. */
  family?: 'gpt2';
  /** Token embeddings [vocab, d]; also the tied LM head. */
  wte: tf.Tensor2D;
  /** wte transposed [d, vocab]: the LM head as a plain (fast) matMul. */
  wteT: tf.Tensor2D;
  /** Position embeddings [n_positions, d]. */
  wpe: tf.Tensor2D;
  blocks: BlockWeights[];
  ln_f: LayerNormWeights;
}

/** A model's weights: GPT-2's, or the Llama family's (llama-weights.ts); `family` tells them apart as in GptConfig. */
export type GptWeights = Gpt2Weights | LlamaWeights;

/** One block of either family (a `last_layers` adapter holds its model's kind; see isLlamaBlock). */
export type DecoderBlockWeights = BlockWeights | LlamaBlockWeights;

/** The final norm of either family: GPT-2's LayerNorm `ln_f`, the Llama family's RMSNorm `norm`. */
export type FinalNormWeights = LayerNormWeights | RmsNormWeights;

/** Whether a block is the Llama family's (GPT-2's has no `self_attn`). */
export function isLlamaBlock(block: DecoderBlockWeights): block is LlamaBlockWeights {
  return 'self_attn' in block;
}

/** Whether a final norm is GPT-2's LayerNorm (it has a bias). */
export function isLayerNorm(norm: FinalNormWeights): norm is LayerNormWeights {
  return 'bias' in norm && norm.bias !== undefined;
}

/** The LM head as a plain matMul's right side, [d, vocab]: GPT-2's wte transposed, the Llama family's lmHeadT. */
export function lmHeadTransposed(weights: GptWeights): tf.Tensor2D {
  return weights.family === 'llama' ? weights.lmHeadT : weights.wteT;
}

export type { LlamaBlockWeights, LlamaWeights, RmsNormWeights } from './llama-weights.js';
export type { HostTensors, Projection } from './projection.js';


/** The wasm backend's heap: WebAssembly memory is 32-bit addressed (4 GiB). */
export const WASM_HEAP_BYTES = 4 * 1024 ** 3;

/**
 * Uploads a checkpoint's arrays to the backend. The caller owns the result (see disposeWeights).
 * @throws ResourceExhausted if the weights cannot fit the backend (see assertWeightsFit).
 */
export function weightsFromHost(config: Gpt2Config, host: HostTensors): Gpt2Weights;
export function weightsFromHost(config: LlamaConfig, host: HostTensors): LlamaWeights;
export function weightsFromHost(config: GptConfig, host: HostTensors): GptWeights;
export function weightsFromHost(config: GptConfig, host: HostTensors): GptWeights {
  assertWeightsFit(config);
  if (config.family === 'llama') return llamaWeightsFromHost(config, host);
  return gpt2WeightsFromHost(config, host);
}

function gpt2WeightsFromHost(config: Gpt2Config, host: HostTensors): Gpt2Weights {
  const wte = hostTensor(host, 'wte.weight') as tf.Tensor2D;
  const blocks = Array.from({ length: config.nLayer }, (_, i) => gpt2BlockFromHost(host, i));
  return { wte, wteT: tf.transpose(wte), wpe: hostTensor(host, 'wpe.weight') as tf.Tensor2D, blocks, ln_f: layerNormFromHost(host, 'ln_f') };
}

function hostTensor(host: HostTensors, name: string): tf.Tensor {
  const h = host.get(name);
  if (!h) throw new Error(`missing tensor \`${name}\``);
  return tf.tensor(h.data, h.shape, 'float32');
}

/** Uploads the LayerNorm `${prefix}.weight` / `.bias` of a GPT-2 checkpoint. */
export function layerNormFromHost(host: HostTensors, prefix: string): LayerNormWeights {
  return { weight: hostTensor(host, `${prefix}.weight`) as tf.Tensor1D, bias: hostTensor(host, `${prefix}.bias`) as tf.Tensor1D };
}

/** Uploads block `layer` of a GPT-2 checkpoint (tensors `h.{layer}.…`). */
export function gpt2BlockFromHost(host: HostTensors, layer: number): BlockWeights {
  const lin = (p: string): Linear => ({ weight: hostTensor(host, `${p}.weight`) as tf.Tensor2D, bias: hostTensor(host, `${p}.bias`) as tf.Tensor1D });
  const p = `h.${layer}.`;
  return {
    ln_1: layerNormFromHost(host, `${p}ln_1`),
    c_attn: lin(`${p}attn.c_attn`),
    attn_c_proj: lin(`${p}attn.c_proj`),
    ln_2: layerNormFromHost(host, `${p}ln_2`),
    c_fc: lin(`${p}mlp.c_fc`),
    mlp_c_proj: lin(`${p}mlp.c_proj`),
  };
}

/** Hugging Face name -> tensor for every weight of a GPT-2 model (wteT excluded: it is derived). */
export function namedWeights(weights: Gpt2Weights): Map<string, tf.Tensor> {
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

/** Reads every weight of a GPT-2 model back to the host (await data(), never dataSync). */
export async function weightsToHost(weights: Gpt2Weights): Promise<HostTensors> {
  const out: HostTensors = new Map();
  for (const [name, t] of namedWeights(weights)) {
    out.set(name, { shape: t.shape.slice(), data: (await t.data()) as Float32Array });
  }
  return out;
}

/** Frees every tensor of the weights, derived ones included. */
export function disposeWeights(weights: GptWeights): void {
  if (weights.family === 'llama') {
    disposeLlamaWeights(weights);
    return;
  }
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

/** Bytes the weights occupy on the backend: float32 parameters plus the transposed tied LM head. */
export function residentWeightBytes(config: GptConfig): number {
  const tied = config.family !== 'llama' || config.tieWordEmbeddings;
  return 4 * (parameterCount(config) + (tied ? config.vocabSize * config.nEmbd : 0));
}

/**
 * Fails before anything is read or allocated when the weights cannot fit the
 * active backend: on wasm, all tensors live in one 4 GiB heap. `source`
 * (the model's config.json) prefixes the message.
 * @throws ResourceExhausted naming the model's size and the limit.
 */
export function assertWeightsFit(config: GptConfig, backend = tf.getBackend(), source?: string): void {
  const bytes = residentWeightBytes(config);
  if (backend !== 'wasm' || bytes <= WASM_HEAP_BYTES) return;
  const gib = (n: number) => `${(n / 1024 ** 3).toFixed(2)} GiB`;
  throw new ResourceExhausted(
    `${source ? `${source}: ` : ''}the model's weights take ${gib(bytes)} as float32 (${parameterCount(config)} parameters), ` +
      `more than the wasm backend's ${gib(WASM_HEAP_BYTES)} heap: use a smaller model or another backend`,
  );
}
