import * as tf from '@tensorflow/tfjs';
import { FailedPrecondition, ResourceExhausted } from '../common/errors.js';
import type { Gpt2Config, GptConfig, LlamaConfig } from './gpt-config.js';
import { hfTensorShapes } from './gpt-config.js';
import { disposeLlamaWeights, type LlamaWeights, llamaWeightsFromHost } from './llama-weights.js';

/**
 * A projection y = x @ weight (+ bias), weight stored [in, out] as in Hugging
 * Face GPT-2's Conv1D (nn.Linear's [out, in] weights are transposed at load:
 * a plain matMul is far faster on wasm than a transposeB one).
 */
export interface Projection {
  weight: tf.Tensor2D;
  bias?: tf.Tensor1D;
  /**
   * weight transposed ([out, in]), present only on frozen weights during
   * training: it lets the backward pass avoid a transposeB matMul, which is
   * about 10x slower than a plain one on the wasm backend.
   */
  weightT?: tf.Tensor2D;
}

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

export type { LlamaWeights } from './llama-weights.js';

/** Host-side arrays by Hugging Face name, as checkpoints hold them. */
export type HostTensors = Map<string, { shape: number[]; data: Float32Array }>;

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

/**
 * The weights as GPT-2's, for what only GPT-2 has so far (fine-tuning,
 * last_layers adapters, merging LoRA into the weights).
 * @throws FailedPrecondition naming `what` for a Llama-family model.
 */
export function gpt2Weights(weights: GptWeights, what: string): Gpt2Weights {
  if (weights.family === 'llama') throw new FailedPrecondition(`${what} is not implemented for Llama-family models yet`);
  return weights;
}

/** The config as GPT-2's; see gpt2Weights. @throws FailedPrecondition naming `what` for a Llama-family model. */
export function gpt2Config(config: GptConfig, what: string): Gpt2Config {
  if (config.family === 'llama') throw new FailedPrecondition(`${what} is not implemented for Llama-family models yet (model_type ${config.modelType})`);
  return config;
}

function gpt2WeightsFromHost(config: Gpt2Config, host: HostTensors): Gpt2Weights {
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
