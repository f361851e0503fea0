import { InvalidArgument } from '../common/errors.js';
import type { DecoderShape } from './decoder-shape.js';

/** `model_type`s that are one decoder here: Llama's blocks with a few switches (see LlamaConfig). */
export const LLAMA_MODEL_TYPES = ['llama', 'mistral', 'qwen2', 'qwen3'] as const;
export type LlamaModelType = (typeof LLAMA_MODEL_TYPES)[number];

/** `rope_scaling`: how the rotary frequencies are stretched for a longer context. */
export type RopeScaling =
  | { type: 'default' }
  /** Every frequency divided by `factor` (positions interpolated). */
  | { type: 'linear'; factor: number }
  /** Llama 3.1: low frequencies divided by `factor`, high ones kept, a smooth ramp between. */
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number };

/**
 * A Llama-family model. Field meanings follow Hugging Face's LlamaConfig;
 * Mistral, Qwen2 and Qwen3 differ only in the switches below.
 */
export interface LlamaConfig extends DecoderShape {
  family: 'llama';
  modelType: LlamaModelType;
  /** Key/value heads (grouped-query attention, `num_key_value_heads`); divides nHead. */
  nKvHead: number;
  /** Channels per head (`head_dim`); Qwen3's is not nEmbd / nHead. */
  headDim: number;
  /** Hidden width of the SwiGLU MLP (`intermediate_size`). */
  nInner: number;
  /** Epsilon of every RMSNorm (`rms_norm_eps`). */
  rmsNormEps: number;
  /** Rotary position embeddings: base (`rope_theta`) and scaling. */
  rope: { theta: number; scaling: RopeScaling };
  /** Biases on q_proj, k_proj, v_proj: Qwen2 always, Llama and Qwen3 per `attention_bias`. */
  qkvBias: boolean;
  /** Bias on o_proj (`attention_bias`; never on Qwen2 or Mistral). */
  oBias: boolean;
  /** Biases on gate_proj, up_proj, down_proj (Llama's `mlp_bias`). */
  mlpBias: boolean;
  /** Qwen3: an RMSNorm over head_dim on each query and key head, before RoPE. */
  qkNorm: boolean;
  /** LM head tied to embed_tokens (`tie_word_embeddings`), else its own `lm_head.weight`. */
  tieWordEmbeddings: boolean;
}

type Json = Record<string, unknown>;

/**
 * Parses a Llama-family `config.json` (model_type llama, mistral, qwen2 or
 * qwen3) with transformers' defaults. A setting this decoder does not
 * implement (sliding-window attention where it would act, mixture of
 * experts, partial rotary, another activation or rope type) is an error
 * naming the key and its value, never ignored.
 * @throws InvalidArgument naming `source` and the key.
 */
export function llamaConfigFromHf(o: Json, modelType: LlamaModelType, source: string): LlamaConfig {
  const fail = (key: string, why: string): never => {
    throw new InvalidArgument(`${source}: \`${key}\` ${why}`);
  };
  const got = (v: unknown) => `got ${JSON.stringify(v)}`;
  const int = (key: string, fallback?: number): number => {
    const v = o[key] ?? fallback; // null means "default" in transformers' configs too
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) fail(key, `must be a positive integer, ${got(o[key])}`);
    return v as number;
  };
  const positive = (key: string, fallback: number): number => {
    const v = o[key] ?? fallback;
    if (typeof v !== 'number' || !(v > 0)) fail(key, `must be > 0, ${got(v)}`);
    return v as number;
  };
  const bool = (key: string, fallback: boolean): boolean => {
    const v = o[key] ?? fallback;
    if (typeof v !== 'boolean') fail(key, `must be true or false, ${got(v)}`);
    return v as boolean;
  };

  const nEmbd = int('hidden_size');
  const nHead = int('num_attention_heads');
  const nLayer = int('num_hidden_layers');
  const nPositions = int('max_position_embeddings');
  const nKvHead = int('num_key_value_heads', nHead);
  if (nHead % nKvHead !== 0) fail('num_attention_heads', `(${nHead}) must be a multiple of \`num_key_value_heads\` (${nKvHead})`);
  // Qwen3Config's head_dim defaults to 128; the others derive it.
  if (o.head_dim == null && modelType !== 'qwen3' && nEmbd % nHead !== 0) {
    fail('hidden_size', `(${nEmbd}) must be divisible by \`num_attention_heads\` (${nHead}) when \`head_dim\` is not given`);
  }
  const headDim = int('head_dim', modelType === 'qwen3' ? 128 : nEmbd / nHead);
  if (headDim % 2 !== 0) fail('head_dim', `must be even (rotary embeddings rotate pairs), ${got(headDim)}`);
  const act = o.hidden_act ?? 'silu';
  // transformers' ACT2FN maps both names to SiLU.
  if (act !== 'silu' && act !== 'swish') fail('hidden_act', `must be silu (the SwiGLU MLP), ${got(act)}`);
  const attentionBias = bool('attention_bias', false);
  const unsupported = (key: string, value: unknown, why: string) => fail(key, `${JSON.stringify(value)}: ${why} is not implemented`);

  for (const key of ['num_experts', 'num_local_experts', 'n_routed_experts']) {
    if (typeof o[key] === 'number' && (o[key] as number) > 0) unsupported(key, o[key], 'mixture of experts');
  }
  if (o.partial_rotary_factor != null && o.partial_rotary_factor !== 1) {
    unsupported('partial_rotary_factor', o.partial_rotary_factor, 'rotating part of each head');
  }
  checkFullAttention(o, modelType, nLayer, nPositions, unsupported);

  return {
    family: 'llama',
    modelType,
    nEmbd,
    nLayer,
    nHead,
    nPositions,
    vocabSize: int('vocab_size'),
    nKvHead,
    headDim,
    nInner: int('intermediate_size'),
    rmsNormEps: positive('rms_norm_eps', 1e-6),
    rope: { theta: ropeTheta(o, fail), scaling: ropeScaling(o, fail) },
    // What each modeling file passes as `bias=` (Qwen2: True on q/k/v, False on o; Mistral: False).
    qkvBias: modelType === 'qwen2' || (modelType !== 'mistral' && attentionBias),
    oBias: (modelType === 'llama' || modelType === 'qwen3') && attentionBias,
    mlpBias: modelType === 'llama' && bool('mlp_bias', false),
    qkNorm: modelType === 'qwen3',
    tieWordEmbeddings: bool('tie_word_embeddings', false),
  };
}

/** Sliding-window attention changes what a layer attends to once a sequence is longer than the window: refuse it wherever it acts. */
function checkFullAttention(
  o: Json,
  modelType: LlamaModelType,
  nLayer: number,
  nPositions: number,
  unsupported: (key: string, value: unknown, why: string) => never,
): void {
  const why = 'sliding-window attention';
  const window = o.sliding_window;
  // A window as long as the context never masks anything.
  const bites = typeof window === 'number' && window < nPositions;
  if (o.layer_types != null) {
    if (!Array.isArray(o.layer_types) || o.layer_types.some((t) => t !== 'full_attention')) unsupported('layer_types', o.layer_types, `${why} (or another layer type)`);
    return;
  }
  if (modelType === 'mistral' && bites) unsupported('sliding_window', window, `${why} shorter than \`max_position_embeddings\``);
  if (modelType === 'qwen2' || modelType === 'qwen3') {
    // transformers: layers from max_window_layers up slide, when use_sliding_window is set.
    const maxWindowLayers = typeof o.max_window_layers === 'number' ? o.max_window_layers : 28; // transformers' default
    if (o.use_sliding_window === true && bites && maxWindowLayers < nLayer) unsupported('use_sliding_window', true, why);
  }
}

function ropeTheta(o: Json, fail: (key: string, why: string) => never): number {
  // transformers 5 moved rope_theta and rope_scaling into rope_parameters.
  const params = isRecord(o.rope_parameters) ? o.rope_parameters : undefined;
  const key = params?.rope_theta != null ? 'rope_parameters.rope_theta' : 'rope_theta';
  const theta = params?.rope_theta ?? o.rope_theta ?? 10000;
  if (typeof theta !== 'number' || !(theta > 1)) fail(key, `must be a number > 1, got ${JSON.stringify(theta)}`);
  return theta as number;
}

function ropeScaling(o: Json, fail: (key: string, why: string) => never): RopeScaling {
  const name = o.rope_parameters != null ? 'rope_parameters' : 'rope_scaling';
  const raw = o.rope_parameters ?? o.rope_scaling;
  if (raw == null) return { type: 'default' };
  if (!isRecord(raw)) return fail(name, `must be an object or null, got ${JSON.stringify(raw)}`);
  // "type" is what rope_type was called before transformers 4.43.
  const typeKey = raw.rope_type !== undefined ? 'rope_type' : 'type';
  const type = raw[typeKey] ?? 'default';
  const num = (key: string, min: number): number => {
    const v = raw[key];
    if (typeof v !== 'number' || !(v >= min)) fail(`${name}.${key}`, `must be a number >= ${min}, got ${JSON.stringify(v)}`);
    return v as number;
  };
  switch (type) {
    case 'default':
      return { type: 'default' };
    case 'linear':
      return { type: 'linear', factor: num('factor', 1) };
    case 'llama3': {
      const scaling = {
        type: 'llama3' as const,
        factor: num('factor', 1),
        lowFreqFactor: num('low_freq_factor', 0),
        highFreqFactor: num('high_freq_factor', 0),
        originalMaxPositions: num('original_max_position_embeddings', 1),
      };
      if (!(scaling.highFreqFactor > scaling.lowFreqFactor)) {
        fail(`${name}.high_freq_factor`, `(${scaling.highFreqFactor}) must be greater than low_freq_factor (${scaling.lowFreqFactor})`);
      }
      return scaling;
    }
    default:
      return fail(`${name}.${typeKey}`, `${JSON.stringify(type)} is not implemented (supported: default, linear, llama3)`);
  }
}

function isRecord(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Every tensor of a Llama-family checkpoint with its shape, under the names
 * LlamaForCausalLM saves (`model.layers.0.self_attn.q_proj.weight`, ...).
 * nn.Linear weights are [out, in].
 */
export function llamaTensorShapes(config: LlamaConfig): Map<string, number[]> {
  const { nEmbd: d, headDim, nInner } = config;
  const q = config.nHead * headDim;
  const kv = config.nKvHead * headDim;
  const shapes = new Map<string, number[]>([['model.embed_tokens.weight', [config.vocabSize, d]]]);
  const linear = (name: string, out: number, inDim: number, bias: boolean) => {
    shapes.set(`${name}.weight`, [out, inDim]);
    if (bias) shapes.set(`${name}.bias`, [out]);
  };
  for (let i = 0; i < config.nLayer; i++) {
    const p = `model.layers.${i}.`;
    shapes.set(`${p}input_layernorm.weight`, [d]);
    linear(`${p}self_attn.q_proj`, q, d, config.qkvBias);
    linear(`${p}self_attn.k_proj`, kv, d, config.qkvBias);
    linear(`${p}self_attn.v_proj`, kv, d, config.qkvBias);
    linear(`${p}self_attn.o_proj`, d, q, config.oBias);
    if (config.qkNorm) {
      shapes.set(`${p}self_attn.q_norm.weight`, [headDim]);
      shapes.set(`${p}self_attn.k_norm.weight`, [headDim]);
    }
    shapes.set(`${p}post_attention_layernorm.weight`, [d]);
    linear(`${p}mlp.gate_proj`, nInner, d, config.mlpBias);
    linear(`${p}mlp.up_proj`, nInner, d, config.mlpBias);
    linear(`${p}mlp.down_proj`, d, nInner, config.mlpBias);
  }
  shapes.set('model.norm.weight', [d]);
  if (!config.tieWordEmbeddings) shapes.set('lm_head.weight', [config.vocabSize, d]);
  return shapes;
}
