import { InvalidArgument } from '../common/errors.js';
import type { DecoderShape } from './decoder-shape.js';
import { LLAMA_MODEL_TYPES, type LlamaConfig, llamaConfigFromHf, type LlamaModelType, llamaTensorShapes } from './llama-config.js';

export type { DecoderShape } from './decoder-shape.js';

/** Shape of a GPT-2-family model. Field meanings follow Hugging Face's GPT2Config. */
export interface Gpt2Config extends DecoderShape {
  /** GPT-2 when absent too (every config before the Llama family). */
  family?: 'gpt2';
  layerNormEpsilon: number;
  /** Only GPT-2's tanh-approximated GELU (`gelu_new`) and exact `gelu` are supported. */
  activationFunction: 'gelu_new' | 'gelu';
}

/**
 * The decoder's config: GPT-2, or the Llama family (llama, mistral, qwen2,
 * qwen3; see llama-config.ts). `family` tells them apart.
 */
export type GptConfig = Gpt2Config | LlamaConfig;

export type { LlamaConfig } from './llama-config.js';

/** GPT-2 small's shape (124M parameters). */
export const GPT2_SMALL: Gpt2Config = {
  nEmbd: 768,
  nLayer: 12,
  nHead: 12,
  nPositions: 1024,
  vocabSize: 50257,
  layerNormEpsilon: 1e-5,
  activationFunction: 'gelu_new',
};

/**
 * Parses a Hugging Face `config.json` object, GPT-2 or Llama family by its
 * `model_type` (GPT-2 when absent); `source` names the file in errors.
 */
export function configFromHf(json: unknown, source = 'config.json'): GptConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new InvalidArgument(`${source}: expected a JSON object`);
  }
  const o = json as Record<string, unknown>;
  const modelType = o.model_type ?? 'gpt2';
  if ((LLAMA_MODEL_TYPES as readonly unknown[]).includes(modelType)) return llamaConfigFromHf(o, modelType as LlamaModelType, source);
  if (modelType !== 'gpt2') {
    throw new InvalidArgument(`${source}: \`model_type\` must be one of gpt2, ${LLAMA_MODEL_TYPES.join(', ')}, got ${JSON.stringify(modelType)}`);
  }
  return gpt2ConfigFromHf(o, source);
}

function gpt2ConfigFromHf(o: Record<string, unknown>, source: string): Gpt2Config {
  const int = (key: string, fallback?: number): number => {
    const v = o[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
      throw new InvalidArgument(`${source}: \`${key}\` must be a positive integer, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const eps = o.layer_norm_epsilon ?? 1e-5;
  if (typeof eps !== 'number' || !(eps > 0)) {
    throw new InvalidArgument(`${source}: \`layer_norm_epsilon\` must be > 0, got ${JSON.stringify(eps)}`);
  }
  const act = o.activation_function ?? 'gelu_new';
  if (act !== 'gelu_new' && act !== 'gelu') {
    throw new InvalidArgument(`${source}: \`activation_function\` must be gelu_new or gelu, got ${JSON.stringify(act)}`);
  }
  const config: Gpt2Config = {
    nEmbd: int('n_embd'),
    nLayer: int('n_layer'),
    nHead: int('n_head'),
    nPositions: int('n_positions', o.n_ctx as number | undefined),
    vocabSize: int('vocab_size'),
    layerNormEpsilon: eps,
    activationFunction: act,
  };
  if (config.nEmbd % config.nHead !== 0) {
    throw new InvalidArgument(`${source}: \`n_embd\` (${config.nEmbd}) must be divisible by \`n_head\` (${config.nHead})`);
  }
  return config;
}

/** The Hugging Face `config.json` object for a GPT-2 config (what `save_pretrained` writes). */
export function configToHf(config: Gpt2Config, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    n_embd: config.nEmbd,
    n_layer: config.nLayer,
    n_head: config.nHead,
    n_positions: config.nPositions,
    n_ctx: config.nPositions,
    vocab_size: config.vocabSize,
    layer_norm_epsilon: config.layerNormEpsilon,
    activation_function: config.activationFunction,
    n_inner: null,
    resid_pdrop: 0.0,
    embd_pdrop: 0.0,
    attn_pdrop: 0.0,
    bos_token_id: config.vocabSize - 1,
    eos_token_id: config.vocabSize - 1,
    tie_word_embeddings: true,
    torch_dtype: 'float32',
    ...extra,
  };
}

/**
 * Every tensor of a checkpoint with its shape, in Hugging Face names: GPT-2's
 * without the `transformer.` prefix, Conv1D weights [in, out]; the Llama
 * family's as llamaTensorShapes gives them.
 */
export function hfTensorShapes(config: GptConfig): Map<string, number[]> {
  if (config.family === 'llama') return llamaTensorShapes(config);
  const d = config.nEmbd;
  const shapes = new Map<string, number[]>([
    ['wte.weight', [config.vocabSize, d]],
    ['wpe.weight', [config.nPositions, d]],
  ]);
  for (let i = 0; i < config.nLayer; i++) {
    const p = `h.${i}.`;
    shapes.set(`${p}ln_1.weight`, [d]);
    shapes.set(`${p}ln_1.bias`, [d]);
    shapes.set(`${p}attn.c_attn.weight`, [d, 3 * d]);
    shapes.set(`${p}attn.c_attn.bias`, [3 * d]);
    shapes.set(`${p}attn.c_proj.weight`, [d, d]);
    shapes.set(`${p}attn.c_proj.bias`, [d]);
    shapes.set(`${p}ln_2.weight`, [d]);
    shapes.set(`${p}ln_2.bias`, [d]);
    shapes.set(`${p}mlp.c_fc.weight`, [d, 4 * d]);
    shapes.set(`${p}mlp.c_fc.bias`, [4 * d]);
    shapes.set(`${p}mlp.c_proj.weight`, [4 * d, d]);
    shapes.set(`${p}mlp.c_proj.bias`, [d]);
  }
  shapes.set('ln_f.weight', [d]);
  shapes.set('ln_f.bias', [d]);
  return shapes;
}
