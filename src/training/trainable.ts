import * as tf from '@tensorflow/tfjs';
import { InvalidArgument } from '../common/errors.js';
import { Rng } from '../common/rng.js';
import type { Adapter, LoraAdapterConfig } from '../model/adapter.js';
import type { Gpt2Config, GptConfig } from '../model/gpt-config.js';
import { type BlockWeights, type Gpt2Weights, gpt2Config, gpt2Weights, type GptWeights, type LayerNormWeights, type Linear } from '../model/gpt-weights.js';
import { LORA_TARGETS, loraScale, type LoraModule, type LoraTarget, type LoraWeights } from '../model/lora.js';
import type { OptimizedParameter } from './adamw.js';

/** LoRA fine-tuning (PEFT's settings). */
export interface LoraMethod {
  kind: 'lora';
  /** Rank, >= 1. */
  r: number;
  /** Scale numerator (PEFT's lora_alpha). */
  alpha: number;
  /** Dropout probability on the LoRA input, in [0, 1). */
  dropout: number;
  /** Adapted projections (default ['attn.c_attn']). */
  targetModules?: LoraTarget[];
  /** rsLoRA: scale alpha / sqrt(r) instead of alpha / r (default false). */
  useRslora?: boolean;
}

/** Train copies of the top `numLayers` blocks and the final layer norm; everything else is frozen. */
export interface LastLayersMethod {
  kind: 'last_layers';
  numLayers: number;
}

/** What a run trains. */
export type TrainMethod = LoraMethod | LastLayersMethod;

/**
 * The trainable parameters of a run over frozen base weights. The base
 * weights are never written: LoRA adds new matrices, and last_layers trains
 * copies of the top blocks.
 */
export interface Trainable {
  readonly method: TrainMethod;
  /** In a fixed order (checkpoints rely on it). */
  readonly params: readonly OptimizedParameter[];
  /**
   * The base weights as the training forward pass sees them: the caller's
   * tensors, plus `weightT` on every frozen projection gradients flow through
   * (the backward pass then avoids transposed matMuls, see model/matmul.ts).
   */
  readonly weights: Gpt2Weights;
  /** The adapter over the live variables (no copy), for forward passes during training. */
  readonly live: Adapter;
  /** Number of trainable scalars. */
  readonly parameterCount: number;
  /** A standalone copy of the current values; the caller owns it (disposeAdapter). */
  exportAdapter(): Adapter;
  /** Backend copies of every parameter, in order (for restoring the best weights later). */
  snapshot(): tf.Tensor[];
  /** Sets every parameter from tensors or host arrays in parameter order. Frees nothing given. */
  assign(values: readonly (tf.Tensor | Float32Array)[]): void;
  /** Frees the variables and the transposes made here (never the base weights). */
  dispose(): void;
}

/** Identity of the base model, recorded in the adapter. */
export interface TrainableOptions {
  /** Seed of the LoRA initialisation. */
  seed: number;
  /** Base model name for the adapter (default ''). */
  baseModel?: string;
}

/**
 * Builds the trainable parameters of `method` over `weights` (validated against `config`).
 * @throws FailedPrecondition for a Llama-family model (GPT-2's modules only, so far).
 */
export function createTrainable(
  config: GptConfig,
  weights: GptWeights,
  method: TrainMethod,
  options: TrainableOptions,
): Trainable {
  const gpt2 = gpt2Config(config, 'fine-tuning');
  const base = gpt2Weights(weights, 'fine-tuning');
  return method.kind === 'lora' ? loraTrainable(gpt2, base, method, options) : lastLayersTrainable(gpt2, base, method, options);
}

function loraTrainable(config: Gpt2Config, weights: Gpt2Weights, method: LoraMethod, options: TrainableOptions): Trainable {
  const targets: LoraTarget[] = method.targetModules?.length ? [...method.targetModules] : ['attn.c_attn'];
  validateLora(method, targets);
  const rng = new Rng(options.seed);
  const params: OptimizedParameter[] = [];
  const modules = new Map<string, LoraModule>();
  for (let layer = 0; layer < config.nLayer; layer++) {
    for (const target of LORA_TARGETS.filter((t) => targets.includes(t))) {
      const [inDim, outDim] = projection(weights.blocks[layer], target).weight.shape;
      // PEFT: kaiming_uniform_(A, a=sqrt(5)) on A [r, in] is U(-1/sqrt(in), 1/sqrt(in)); B = 0.
      const bound = 1 / Math.sqrt(inDim);
      const aInit = Float32Array.from({ length: inDim * method.r }, () => (2 * rng.next() - 1) * bound);
      // tidy frees the initial-value handles; the variables keep the data.
      const a = tf.tidy(() => tf.variable(tf.tensor2d(aInit, [inDim, method.r]), true));
      const b = tf.tidy(() => tf.variable(tf.zeros([method.r, outDim]) as tf.Tensor2D, true));
      const key = `${layer}.${target}`;
      modules.set(key, { a, b });
      params.push({ name: `h.${key}.lora_a`, variable: a, decay: true }, { name: `h.${key}.lora_b`, variable: b, decay: true });
    }
  }
  const adapterConfig: LoraAdapterConfig = {
    r: method.r,
    loraAlpha: method.alpha,
    loraDropout: method.dropout,
    targetModules: targets,
    useRslora: method.useRslora ?? false,
  };
  const lora = (m: Map<string, LoraModule>): LoraWeights => ({
    r: method.r,
    alpha: method.alpha,
    scale: loraScale(method.r, method.alpha, method.useRslora ?? false),
    targets,
    modules: m,
  });
  const baseModel = options.baseModel ?? '';
  const { view, created } = frozenView(weights, 0);
  const normalized: LoraMethod = { ...method, targetModules: [...targets], useRslora: method.useRslora ?? false };
  const live: Adapter = { kind: 'lora', config: adapterConfig, lora: lora(modules), baseModel };
  return trainable(normalized, params, view, created, live, () => {
    const copies = new Map<string, LoraModule>();
    for (const [key, m] of modules) copies.set(key, { a: tf.clone(m.a), b: tf.clone(m.b) });
    return { kind: 'lora', config: { ...adapterConfig, targetModules: [...targets] }, lora: lora(copies), baseModel };
  });
}

function lastLayersTrainable(
  config: Gpt2Config,
  weights: Gpt2Weights,
  method: LastLayersMethod,
  options: TrainableOptions,
): Trainable {
  const n = method.numLayers;
  if (!Number.isInteger(n) || n < 1 || n > config.nLayer) {
    throw new InvalidArgument(`\`num_layers\` must be an integer in [1, ${config.nLayer}], got ${n}`);
  }
  const params: OptimizedParameter[] = [];
  // tf.variable shares the base tensor's data; assign() swaps in new data and never writes the old.
  const v = (t: tf.Tensor, name: string, decay: boolean): tf.Variable => {
    const variable = tf.variable(t, true);
    params.push({ name, variable, decay });
    return variable;
  };
  const ln = (w: LayerNormWeights, name: string): LayerNormWeights => ({
    weight: v(w.weight, `${name}.weight`, false) as tf.Variable<tf.Rank.R1>,
    bias: v(w.bias, `${name}.bias`, false) as tf.Variable<tf.Rank.R1>,
  });
  const lin = (l: Linear, name: string): Linear => ({
    weight: v(l.weight, `${name}.weight`, true) as tf.Variable<tf.Rank.R2>,
    bias: v(l.bias, `${name}.bias`, false) as tf.Variable<tf.Rank.R1>,
  });
  const blocks = new Map<number, BlockWeights>();
  for (let i = config.nLayer - n; i < config.nLayer; i++) {
    const b = weights.blocks[i];
    blocks.set(i, {
      ln_1: ln(b.ln_1, `h.${i}.ln_1`),
      c_attn: lin(b.c_attn, `h.${i}.attn.c_attn`),
      attn_c_proj: lin(b.attn_c_proj, `h.${i}.attn.c_proj`),
      ln_2: ln(b.ln_2, `h.${i}.ln_2`),
      c_fc: lin(b.c_fc, `h.${i}.mlp.c_fc`),
      mlp_c_proj: lin(b.mlp_c_proj, `h.${i}.mlp.c_proj`),
    });
  }
  const lnF = ln(weights.ln_f, 'ln_f');
  const baseModel = options.baseModel ?? '';
  // Nothing below the trained blocks needs a gradient, so no frozen block needs weightT.
  const { view, created } = frozenView(weights, config.nLayer);
  return trainable(method, params, view, created, { kind: 'last_layers', numLayers: n, blocks, lnF, baseModel }, () => {
    const c = <T extends tf.Tensor>(t: T): T => tf.clone(t);
    const copies = new Map<number, BlockWeights>();
    for (const [i, b] of blocks) {
      const cl = (l: Linear): Linear => ({ weight: c(l.weight), bias: c(l.bias) });
      const cn = (w: LayerNormWeights): LayerNormWeights => ({ weight: c(w.weight), bias: c(w.bias) });
      copies.set(i, {
        ln_1: cn(b.ln_1),
        c_attn: cl(b.c_attn),
        attn_c_proj: cl(b.attn_c_proj),
        ln_2: cn(b.ln_2),
        c_fc: cl(b.c_fc),
        mlp_c_proj: cl(b.mlp_c_proj),
      });
    }
    return { kind: 'last_layers', numLayers: n, blocks: copies, lnF: { weight: c(lnF.weight), bias: c(lnF.bias) }, baseModel };
  });
}

function trainable(
  method: TrainMethod,
  params: OptimizedParameter[],
  weights: Gpt2Weights,
  created: tf.Tensor[],
  live: Adapter,
  exportAdapter: () => Adapter,
): Trainable {
  return {
    method,
    params,
    weights,
    live,
    parameterCount: params.reduce((n, p) => n + p.variable.size, 0),
    exportAdapter,
    snapshot: () => params.map((p) => tf.clone(p.variable)),
    assign(values) {
      if (values.length !== params.length) throw new InvalidArgument(`${values.length} values for ${params.length} parameters`);
      tf.tidy(() => {
        params.forEach((p, i) => {
          const value = values[i];
          if (!(value instanceof tf.Tensor) && value.length !== p.variable.size) {
            throw new InvalidArgument(`\`${p.name}\` needs ${p.variable.size} values, got ${value.length}`);
          }
          const shape = p.variable.shape;
          p.variable.assign(value instanceof tf.Tensor ? tf.reshape(value, shape) : tf.tensor(value, shape, 'float32'));
        });
      });
    },
    dispose() {
      for (const p of params) p.variable.dispose();
      for (const t of created) t.dispose();
    },
  };
}

/**
 * The base weights with `weightT` on the four projections of blocks
 * `fromLayer` and up (where gradients pass through frozen projections).
 * Returns the view and the transposes created (existing ones are reused).
 */
function frozenView(weights: Gpt2Weights, fromLayer: number): { view: Gpt2Weights; created: tf.Tensor[] } {
  const created: tf.Tensor[] = [];
  const withT = (l: Linear): Linear => {
    if (l.weightT) return l;
    const weightT = tf.transpose(l.weight) as tf.Tensor2D;
    created.push(weightT);
    return { ...l, weightT };
  };
  const blocks = weights.blocks.map((b, i) =>
    i < fromLayer
      ? b
      : {
          ...b,
          c_attn: withT(b.c_attn),
          attn_c_proj: withT(b.attn_c_proj),
          c_fc: withT(b.c_fc),
          mlp_c_proj: withT(b.mlp_c_proj),
        },
  );
  return { view: { ...weights, blocks }, created };
}

function projection(block: BlockWeights, target: LoraTarget): Linear {
  switch (target) {
    case 'attn.c_attn':
      return block.c_attn;
    case 'attn.c_proj':
      return block.attn_c_proj;
    case 'mlp.c_fc':
      return block.c_fc;
    case 'mlp.c_proj':
      return block.mlp_c_proj;
  }
}

function validateLora(method: LoraMethod, targets: string[]): void {
  if (!Number.isInteger(method.r) || method.r < 1) throw new InvalidArgument(`\`r\` must be a positive integer, got ${method.r}`);
  if (!(method.alpha > 0) || !Number.isFinite(method.alpha)) {
    throw new InvalidArgument(`\`lora_alpha\` must be > 0, got ${method.alpha}`);
  }
  if (!(method.dropout >= 0 && method.dropout < 1)) {
    throw new InvalidArgument(`\`lora_dropout\` must be in [0, 1), got ${method.dropout}`);
  }
  for (const t of targets) {
    if (!(LORA_TARGETS as readonly string[]).includes(t)) {
      throw new InvalidArgument(`\`target_modules\` entries must be among ${LORA_TARGETS.join(', ')}, got ${JSON.stringify(t)}`);
    }
  }
  if (new Set(targets).size !== targets.length) {
    throw new InvalidArgument(`\`target_modules\` has duplicates: ${JSON.stringify(targets)}`);
  }
}
