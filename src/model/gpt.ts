import * as tf from '@tensorflow/tfjs';
import type { GptConfig } from './gpt-config.js';
import type { BlockWeights, GptWeights, LayerNormWeights } from './gpt-weights.js';
import { gelu, layerNorm, linear } from './layers.js';
import { causalSelfAttention, MASKED } from './attention.js';
import { type DecodeCache, KvCache, type LayerKv } from './kv-cache.js';
import { PagedKvCache } from './paged-kv-cache.js';
import { loraDelta, type LoraTrainingOptions, type RowSegment } from './lora.js';
import type { LoraStackCache } from './lora-stack.js';
import { embed, matMul, matMulFrozen, recordingGradients } from './matmul.js';
import { hostEmbed } from './kernels/host-kernels.js';
import { onHostBackend } from './kernels/host-memory.js';

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
  /** Replacement weights for some blocks (a `last_layers` adapter), by layer index. */
  blockOverrides?: Map<number, BlockWeights>;
  /** Replacement final layer norm (a `last_layers` adapter). */
  lnF?: LayerNormWeights;
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
  /** Train the embeddings (pretraining): routes their gradients around ops wasm lacks. */
  trainEmbeddings?: boolean;
}

/**
 * The GPT-2 forward pass. With a cache, the cache is updated in place (its old
 * tensors are freed); every other intermediate is freed before returning.
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
    const ids = tf.tensor1d(input.ids, 'int32');
    const pos = tf.tensor1d(input.positions, 'int32');
    let x: tf.Tensor2D;
    if (options.trainEmbeddings) x = tf.add(embed(weights.wte, ids), embed(weights.wpe, pos));
    else if (!recordingGradients() && onHostBackend()) x = hostEmbed(weights.wte, weights.wpe, ids, pos);
    else x = tf.add(tf.gather(weights.wte, ids), tf.gather(weights.wpe, pos));
    const biasT = bias && tf.tensor4d(bias, [batch, 1, length, past + length]);
    const eps = config.layerNormEpsilon;
    const adapted = (h: tf.Tensor2D, y: tf.Tensor2D, key: string): tf.Tensor2D => {
      const delta = loraDelta(h, key, segments, length, y.shape[1], options.loraTraining, options.loraStacks);
      return delta ? (tf.add(y, delta) as tf.Tensor2D) : y;
    };
    const block = (i: number, x: tf.Tensor2D): tf.Tensor2D => {
      const blk = options.blockOverrides?.get(i) ?? weights.blocks[i];
      const h1 = layerNorm(x, blk.ln_1, eps);
      const qkv = adapted(h1, linear(h1, blk.c_attn), `${i}.attn.c_attn`);
      let y: tf.Tensor2D;
      if (paged) y = paged.attend(i, qkv, input);
      else {
        const attn = causalSelfAttention(qkv, batch, length, config.nHead, cache?.layers[i], biasT!);
        y = attn.y;
        if (cache) present.push({ kT: tf.keep(attn.kv.kT), v: tf.keep(attn.kv.v) });
      }
      const mid = tf.add(x, adapted(y, linear(y, blk.attn_c_proj), `${i}.attn.c_proj`)) as tf.Tensor2D;
      const h2 = layerNorm(mid, blk.ln_2, eps);
      const m = gelu(adapted(h2, linear(h2, blk.c_fc), `${i}.mlp.c_fc`), config.activationFunction);
      return tf.add(mid, adapted(m, linear(m, blk.mlp_c_proj), `${i}.mlp.c_proj`)) as tf.Tensor2D;
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
    x = layerNorm(x, options.lnF ?? weights.ln_f, eps);
    if (options.output === 'hidden') return x;
    if (options.output === 'last' && length > 1) {
      const last = Int32Array.from({ length: batch }, (_, b) => b * length + length - 1);
      x = tf.gather(x, tf.tensor1d(last, 'int32'));
    }
    return lmHead(x, weights, options.trainEmbeddings ?? false);
  });
  if (cache) {
    present.forEach((kv, i) => cache.setLayer(i, kv));
    cache.appendValidity(length, input.valid);
  }
  paged?.commit(input);
  return out;
}

/** Logits [rows, vocab] from final hidden states, through the LM head tied to wte. */
export function lmHead(x: tf.Tensor2D, weights: GptWeights, trainEmbeddings = false): tf.Tensor2D {
  // Frozen: wteT is the precomputed transpose. Trained: derive it in the graph so the gradient reaches wte.
  return trainEmbeddings ? matMul(x, tf.transpose(weights.wte) as tf.Tensor2D) : matMulFrozen(x, weights.wteT, weights.wte);
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
