import * as tf from '@tensorflow/tfjs';
import type { GptConfig } from './gpt-config.js';
import { type BlockWeights, type DecoderBlockWeights, type FinalNormWeights, type GptWeights, isLayerNorm, isLlamaBlock, type LlamaBlockWeights } from './gpt-weights.js';
import { linear } from './layers.js';
import { causalSelfAttention, MASKED } from './attention.js';
import { attentionHeads } from './attention-heads.js';
import { type DecodeCache, KvCache, type LayerKv } from './kv-cache.js';
import { PagedKvCache } from './paged-kv-cache.js';
import { loraDelta, type LoraTrainingOptions, type RowSegment } from './lora.js';
import type { LoraStackCache } from './lora-stack.js';
import type { DecoderParts, Project } from './decoder-parts.js';
import { gpt2Parts } from './gpt2-parts.js';
import { llamaParts } from './llama-parts.js';
import { recordingGradients } from './matmul.js';

/** A batch of token rows, flattened row-major ([batch * length]). */
export interface ForwardInput {
  batch: number;
  /** New tokens per row in this call. */
  length: number;
  ids: Int32Array;
  /** Position id of each token. */
  positions: Int32Array;
  /** 1 for a real token, 0 for padding (padding is never attended to). */
  valid: Uint8Array;
  /** Optional packed-example ids: tokens attend only within their segment. */
  segmentIds?: Int32Array;
}

export interface ForwardOptions {
  /** Generation: earlier columns are read from it and the new ones appended to it. */
  cache?: DecodeCache;
  /** Rows grouped by LoRA adapter; rows outside every segment use the base model. */
  segments?: RowSegment[];
  /** Replacement weights for some blocks (a `last_layers` adapter of the model's family), by layer index. */
  blockOverrides?: Map<number, DecoderBlockWeights>;
  /** Replacement final norm (a `last_layers` adapter): GPT-2's ln_f, the Llama family's norm. */
  lnF?: FinalNormWeights;
  /** Training: LoRA dropout. */
  loraTraining?: LoraTrainingOptions;
  /** Keeps stacked adapter weights across calls (a decoder's batch of several adapters); see lora-stack.ts. */
  loraStacks?: LoraStackCache;
  /**
   * What to return: `logits` [batch*length, vocab] (default), `last` the logits
   * of each row's last token [batch, vocab], or `hidden` the final normalised
   * hidden states [batch*length, d] (training picks the rows it needs first).
   */
  output?: 'logits' | 'last' | 'hidden';
  /** Train the embeddings (pretraining, GPT-2): routes their gradients around ops wasm lacks. */
  trainEmbeddings?: boolean;
}

/**
 * The decoder's forward pass, GPT-2 or Llama family (the config's `family`
 * picks the parts, see decoder-parts.ts). With a cache, the cache is updated
 * in place (its old tensors are freed); every other intermediate is freed
 * before returning.
 */
export function forward(config: GptConfig, weights: GptWeights, input: ForwardInput, options: ForwardOptions = {}): tf.Tensor2D {
  const { batch, length } = input;
  const paged = options.cache instanceof PagedKvCache ? options.cache : undefined;
  const cache = options.cache instanceof KvCache ? options.cache : undefined;
  const past = cache?.length ?? 0;
  // The paged cache holds each row's own tokens and masks nothing: no bias.
  const bias = paged ? undefined : attentionBias(input, cache);
  const segments = options.segments ?? [];
  const present: LayerKv[] = [];
  const out = tf.tidy(() => {
    const project: Project = (h, p, key) => {
      const y = linear(h, p);
      const delta = loraDelta(h, key, segments, length, y.shape[1], options.loraTraining, options.loraStacks);
      return delta ? (tf.add(y, delta) as tf.Tensor2D) : y;
    };
    const parts = decoderParts(config, weights, input, options, project);
    let x = parts.embed(tf.tensor1d(input.ids, 'int32'), tf.tensor1d(input.positions, 'int32'));
    const biasT = bias && tf.tensor4d(bias, [batch, 1, length, past + length]);
    const heads = attentionHeads(config);
    const block = (i: number, x: tf.Tensor2D): tf.Tensor2D => {
      const qkv = parts.qkv(i, parts.attnNorm(i, x));
      let y: tf.Tensor2D;
      if (paged) y = paged.attend(i, qkv, input);
      else {
        const attn = causalSelfAttention(qkv, batch, length, heads, cache?.layers[i], biasT!);
        y = attn.y;
        if (cache) present.push({ kT: tf.keep(attn.kv.kT), v: tf.keep(attn.kv.v) });
      }
      const mid = tf.add(x, parts.attnOut(i, y)) as tf.Tensor2D;
      return tf.add(mid, parts.mlp(i, parts.mlpNorm(i, mid))) as tf.Tensor2D;
    };
    // Inference frees each block's intermediates as it ends: a long prefill
    // (GPT-2 small, 64 prompts of 32 tokens) otherwise held every layer's
    // activations at once, gigabytes, past the 4 GiB wasm heap. Training keeps
    // them: backprop needs them.
    const inference = !recordingGradients();
    for (let i = 0; i < config.nLayer; i++) {
      if (!inference) {
        x = block(i, x);
        continue;
      }
      const prev = x;
      x = tf.tidy(() => block(i, prev));
      prev.dispose();
    }
    x = parts.finalNorm(x);
    if (options.output === 'hidden') return x;
    if (options.output === 'last' && length > 1) {
      const last = Int32Array.from({ length: batch }, (_, b) => b * length + length - 1);
      x = tf.gather(x, tf.tensor1d(last, 'int32'));
    }
    return parts.lmHead(x);
  });
  if (cache) {
    present.forEach((kv, i) => cache.setLayer(i, kv));
    cache.appendValidity(length, input.valid);
  }
  paged?.commit(input);
  return out;
}

/**
 * The family's parts for this pass, with a `last_layers` adapter's blocks and
 * final norm when given (of the model's family, else an error). Embedding
 * training is GPT-2's only for now, and refused here for the Llama family
 * rather than half applied.
 */
function decoderParts(config: GptConfig, weights: GptWeights, input: ForwardInput, options: ForwardOptions, project: Project): DecoderParts {
  const { blockOverrides, lnF } = options;
  const foreign = (kind: string) => new Error(`a last_layers adapter's ${kind} of another family than the model's`);
  if (config.family !== 'llama') {
    if (weights.family === 'llama') throw new Error('GPT-2 config with Llama-family weights');
    if (blockOverrides && [...blockOverrides.values()].some(isLlamaBlock)) throw foreign('blocks');
    if (lnF && !isLayerNorm(lnF)) throw foreign('final norm');
    return gpt2Parts(config, weights, project, {
      blockOverrides: blockOverrides as Map<number, BlockWeights> | undefined, // checked just above
      lnF,
      trainEmbeddings: options.trainEmbeddings,
    });
  }
  if (weights.family !== 'llama') throw new Error('Llama-family config with GPT-2 weights');
  const refuse = (what: string) => {
    throw new Error(`${what} is not implemented for Llama-family models yet (model_type ${config.modelType})`);
  };
  if (options.trainEmbeddings) refuse('training the embeddings');
  if (blockOverrides && ![...blockOverrides.values()].every(isLlamaBlock)) throw foreign('blocks');
  if (lnF && isLayerNorm(lnF)) throw foreign('final norm');
  return llamaParts(config, weights, input.positions, project, {
    blockOverrides: blockOverrides as Map<number, LlamaBlockWeights> | undefined, // checked just above
    norm: lnF,
  });
}

/** The additive attention mask [batch, 1, length, past + length] on the host. */
function attentionBias(input: ForwardInput, cache: KvCache | undefined): Float32Array {
  const { batch, length, valid, segmentIds } = input;
  const past = cache?.length ?? 0;
  const keys = past + length;
  const bias = new Float32Array(batch * length * keys).fill(MASKED);
  for (let b = 0; b < batch; b++) {
    const pastValid = cache?.valid[b];
    for (let i = 0; i < length; i++) {
      const rowOff = (b * length + i) * keys;
      for (let j = 0; j < past; j++) if (pastValid![j]) bias[rowOff + j] = 0;
      for (let j = 0; j <= i; j++) {
        if (!valid[b * length + j]) continue;
        if (segmentIds && segmentIds[b * length + j] !== segmentIds[b * length + i]) continue;
        bias[rowOff + past + j] = 0;
      }
    }
  }
  return bias;
}
