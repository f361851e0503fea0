import * as tf from '@tensorflow/tfjs';
import { InvalidArgument } from '../common/errors.js';
import { Rng } from '../common/rng.js';
import type { Adapter, LoraAdapterConfig } from '../model/adapter.js';
import type { GptConfig } from '../model/gpt-config.js';
import type { DecoderBlockWeights, GptWeights, Projection } from '../model/gpt-weights.js';
import { checkTargets, type FamilyModules, familyModules, targetsFromNames } from '../model/family-modules.js';
import { loraScale, type LoraModule, type LoraTarget, type LoraWeights } from '../model/lora.js';
import type { OptimizedParameter } from './adamw.js';
import type { LmHead } from './sft-loss.js';

/** LoRA fine-tuning (PEFT's settings). */
export interface LoraMethod {
  kind: 'lora';
  /** Rank, >= 1. */
  r: number;
  /** Scale numerator (PEFT's lora_alpha). */
  alpha: number;
  /** Dropout probability on the LoRA input, in [0, 1). */
  dropout: number;
  /** Adapted projections, modules of the model's family (default PEFT's: GPT-2's c_attn, the Llama family's q_proj and v_proj). */
  targetModules?: LoraTarget[];
  /** rsLoRA: scale alpha / sqrt(r) instead of alpha / r (default false). */
  useRslora?: boolean;
}

/** Train copies of the top `numLayers` blocks and the final norm; everything else is frozen. */
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
  readonly weights: GptWeights;
  /** The frozen LM head for the fused loss (sft-loss.ts): GPT-2's tied wte, the Llama family's head. */
  readonly head: LmHead;
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
 * Builds the trainable parameters of `method` over `weights` (validated against `config`),
 * for either family: what differs is the family's modules (family-modules.ts).
 * @throws InvalidArgument for a bad rank, alpha, dropout, num_layers, or a target the family lacks.
 */
export function createTrainable(
  config: GptConfig,
  weights: GptWeights,
  method: TrainMethod,
  options: TrainableOptions,
): Trainable {
  if ((config.family === 'llama') !== (weights.family === 'llama')) throw new Error('config and weights of different families');
  const family = familyModules(config);
  return method.kind === 'lora' ? loraTrainable(config, weights, family, method, options) : lastLayersTrainable(config, weights, family, method, options);
}

function loraTrainable(config: GptConfig, weights: GptWeights, family: FamilyModules, method: LoraMethod, options: TrainableOptions): Trainable {
  const targets: LoraTarget[] = method.targetModules?.length ? [...method.targetModules] : targetsFromNames(family, []);
  validateLora(method, targets, family);
  const rng = new Rng(options.seed);
  const params: OptimizedParameter[] = [];
  const modules = new Map<string, LoraModule>();
  for (let layer = 0; layer < config.nLayer; layer++) {
    for (const target of family.targets.filter((t) => targets.includes(t))) {
      const [inDim, outDim] = family.projection(weights.blocks[layer], target).weight.shape;
      // PEFT: kaiming_uniform_(A, a=sqrt(5)) on A [r, in] is U(-1/sqrt(in), 1/sqrt(in)); B = 0.
      const bound = 1 / Math.sqrt(inDim);
      const aInit = Float32Array.from({ length: inDim * method.r }, () => (2 * rng.next() - 1) * bound);
      // tidy frees the initial-value handles; the variables keep the data.
      const a = tf.tidy(() => tf.variable(tf.tensor2d(aInit, [inDim, method.r]), true));
      const b = tf.tidy(() => tf.variable(tf.zeros([method.r, outDim]) as tf.Tensor2D, true));
      const key = `${layer}.${target}`;
      modules.set(key, { a, b });
      const name = `${family.layers}.${key}`;
      params.push({ name: `${name}.lora_a`, variable: a, decay: true }, { name: `${name}.lora_b`, variable: b, decay: true });
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
  const frozen = frozenView(config, weights, family, 0);
  const normalized: LoraMethod = { ...method, targetModules: [...targets], useRslora: method.useRslora ?? false };
  const live: Adapter = { kind: 'lora', config: adapterConfig, lora: lora(modules), baseModel };
  return trainable(normalized, params, frozen, live, () => {
    const copies = new Map<string, LoraModule>();
    for (const [key, m] of modules) copies.set(key, { a: tf.clone(m.a), b: tf.clone(m.b) });
    return { kind: 'lora', config: { ...adapterConfig, targetModules: [...targets] }, lora: lora(copies), baseModel };
  });
}

function lastLayersTrainable(
  config: GptConfig,
  weights: GptWeights,
  family: FamilyModules,
  method: LastLayersMethod,
  options: TrainableOptions,
): Trainable {
  const n = method.numLayers;
  if (!Number.isInteger(n) || n < 1 || n > config.nLayer) {
    throw new InvalidArgument(`\`num_layers\` must be an integer in [1, ${config.nLayer}], got ${n}`);
  }
  const params: OptimizedParameter[] = [];
  // tf.variable shares the base tensor's data; assign() swaps in new data and never writes the old.
  // Weight decay on projection matrices only, not on biases or norm gains.
  const v = (t: tf.Tensor, role: { name: string; matrix: boolean }): tf.Tensor => {
    const variable = tf.variable(t, true);
    params.push({ name: role.name, variable, decay: role.matrix });
    return variable;
  };
  const blocks = new Map<number, DecoderBlockWeights>();
  for (let i = config.nLayer - n; i < config.nLayer; i++) blocks.set(i, family.mapBlock(weights.blocks[i], i, v));
  const lnF = family.mapFinalNorm(family.finalNormOf(weights), v);
  const baseModel = options.baseModel ?? '';
  // Nothing below the trained blocks needs a gradient, so no frozen block needs weightT.
  const frozen = frozenView(config, weights, family, config.nLayer);
  return trainable(method, params, frozen, { kind: 'last_layers', numLayers: n, blocks, lnF, baseModel }, () => {
    const c = (t: tf.Tensor) => tf.clone(t);
    const copies = new Map<number, DecoderBlockWeights>();
    for (const [i, b] of blocks) copies.set(i, family.mapBlock(b, i, c));
    return { kind: 'last_layers', numLayers: n, blocks: copies, lnF: family.mapFinalNorm(lnF, c), baseModel };
  });
}

/** The frozen base as the training pass sees it, and the tensors made for it (freed with the trainable). */
interface FrozenView {
  weights: GptWeights;
  head: LmHead;
  created: tf.Tensor[];
}

function trainable(
  method: TrainMethod,
  params: OptimizedParameter[],
  frozen: FrozenView,
  live: Adapter,
  exportAdapter: () => Adapter,
): Trainable {
  return {
    method,
    params,
    weights: frozen.weights,
    head: frozen.head,
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
      for (const t of frozen.created) t.dispose();
    },
  };
}

/**
 * The base weights with `weightT` on every projection of blocks `fromLayer`
 * and up (where gradients pass through frozen projections), and the LM head
 * the fused loss takes: [vocab, d] and its transpose [d, vocab]. GPT-2's and
 * a tied Llama-family model's are the token embeddings; an untied head's
 * [vocab, d] side is made here. Existing transposes are reused.
 */
function frozenView(config: GptConfig, weights: GptWeights, family: FamilyModules, fromLayer: number): FrozenView {
  const created: tf.Tensor[] = [];
  const withT = (l: Projection): Projection => {
    if (l.weightT) return l;
    const weightT = tf.transpose(l.weight) as tf.Tensor2D;
    created.push(weightT);
    return { ...l, weightT };
  };
  const blocks = weights.blocks.map((b, i) =>
    i < fromLayer ? b : family.targets.reduce((block, t) => family.withProjection(block, t, withT(family.projection(block, t))), b as DecoderBlockWeights),
  );
  const view = { ...weights, blocks } as GptWeights; // each block replaced by one of its own family (withProjection)
  if (weights.family !== 'llama') return { weights: view, head: { wte: weights.wte, wteT: weights.wteT }, created };
  // Tied (tie_word_embeddings): lmHeadT is embed_tokens transposed.
  const tied = config.family === 'llama' && config.tieWordEmbeddings;
  const wte = tied ? weights.embed_tokens : (tf.transpose(weights.lmHeadT) as tf.Tensor2D);
  if (!tied) created.push(wte);
  return { weights: view, head: { wte, wteT: weights.lmHeadT }, created };
}

function validateLora(method: LoraMethod, targets: string[], family: FamilyModules): void {
  if (!Number.isInteger(method.r) || method.r < 1) throw new InvalidArgument(`\`r\` must be a positive integer, got ${method.r}`);
  if (!(method.alpha > 0) || !Number.isFinite(method.alpha)) {
    throw new InvalidArgument(`\`lora_alpha\` must be > 0, got ${method.alpha}`);
  }
  if (!(method.dropout >= 0 && method.dropout < 1)) {
    throw new InvalidArgument(`\`lora_dropout\` must be in [0, 1), got ${method.dropout}`);
  }
  checkTargets(family, targets);
  if (new Set(targets).size !== targets.length) {
    throw new InvalidArgument(`\`target_modules\` has duplicates: ${JSON.stringify(targets)}`);
  }
}
