import * as tf from '@tensorflow/tfjs';
import { InvalidArgument } from '../common/errors.js';
import { Rng } from '../common/rng.js';
import type { Adapter, LoraAdapterConfig } from './adapter.js';
import type { GptConfig } from './gpt-config.js';
import type { DecoderBlockWeights, GptWeights } from './gpt-weights.js';
import { checkTargets, familyModules } from './family-modules.js';
import { type LoraModule, loraScale } from './lora.js';

/**
 * Fresh adapters to train, initialised as PEFT initialises them, so that a job
 * started here and one started in PEFT begin from the same distribution.
 */

/**
 * PEFT's `init_lora_weights`: `true` draws A like nn.Linear's default
 * (kaiming_uniform with a = sqrt(5), i.e. U(-1/sqrt(in), 1/sqrt(in))) and zeroes B,
 * so the adapter starts as the identity; `'gaussian'` draws A ~ N(0, 1/r) and zeroes
 * B; `false` leaves both at nn.Linear's default (B ~ U(-1/sqrt(r), 1/sqrt(r))), a
 * non-zero adapter, useful for tests.
 */
export type LoraInit = boolean | 'gaussian';

/** Options for {@link initLoraAdapter}. */
export interface InitLoraOptions {
  /** Seed of the draws; same seed, same adapter. */
  seed: number;
  /** Default true (PEFT's default). */
  init?: LoraInit;
  /** Layers to adapt (PEFT's layers_to_transform); default all. */
  layers?: number[];
  /** Recorded as base_model_name_or_path. */
  baseModel?: string;
}

/**
 * A new LoRA adapter for a model of shape `model`, adapting `config.targetModules`
 * (modules of the model's family) in every layer (or `options.layers`). The
 * caller owns it (see disposeAdapter).
 * @throws InvalidArgument for a non-positive r, no targets, a target the model's
 *   family lacks, or a layer out of range.
 */
export function initLoraAdapter(model: GptConfig, config: LoraAdapterConfig, options: InitLoraOptions): Adapter & { kind: 'lora' } {
  const family = familyModules(model);
  const { r } = config;
  if (!Number.isInteger(r) || r <= 0) throw new InvalidArgument(`\`r\` must be a positive integer, got ${r}`);
  if (config.targetModules.length === 0) throw new InvalidArgument('`target_modules` must name at least one module');
  checkTargets(family, config.targetModules);
  const layers = options.layers ?? Array.from({ length: model.nLayer }, (_, i) => i);
  const out = layers.find((l) => !Number.isInteger(l) || l < 0 || l >= model.nLayer);
  if (out !== undefined) throw new InvalidArgument(`\`layers_to_transform\`: layer ${out} is out of range [0, ${model.nLayer})`);
  const init = options.init ?? true;
  const rng = new Rng(options.seed);
  const uniform = (n: number, bound: number) => Float32Array.from({ length: n }, () => (2 * rng.next() - 1) * bound);
  const modules = new Map<string, LoraModule>();
  for (const layer of layers) {
    for (const target of config.targetModules) {
      const [din, dout] = family.dims(model, target);
      // Drawn in PEFT's [r, in] / [out, r] layout; our a = A^T and b = B^T hold the same numbers.
      const a = init === 'gaussian' ? Float32Array.from({ length: r * din }, () => rng.normal() / r) : uniform(r * din, 1 / Math.sqrt(din));
      const b = init === false ? uniform(dout * r, 1 / Math.sqrt(r)) : new Float32Array(dout * r);
      modules.set(`${layer}.${target}`, {
        a: tf.tidy(() => tf.transpose(tf.tensor2d(a, [r, din]))),
        b: tf.tidy(() => tf.transpose(tf.tensor2d(b, [dout, r]))),
      });
    }
  }
  return {
    kind: 'lora',
    config: { ...config, targetModules: [...config.targetModules] },
    lora: {
      r,
      alpha: config.loraAlpha,
      scale: loraScale(r, config.loraAlpha, config.useRslora),
      targets: [...config.targetModules],
      modules,
    },
    baseModel: options.baseModel ?? '',
  };
}

/**
 * A new `last_layers` adapter: copies of the base model's top `numLayers` blocks
 * and final norm, to be trained in place of them. The caller owns it.
 * @throws InvalidArgument if numLayers is not in [1, n_layer].
 */
export function initLastLayersAdapter(model: GptWeights, numLayers: number, baseModel = ''): Adapter & { kind: 'last_layers' } {
  const family = familyModules(model);
  const n = model.blocks.length;
  if (!Number.isInteger(numLayers) || numLayers < 1 || numLayers > n) {
    throw new InvalidArgument(`\`num_layers\` must be an integer in [1, ${n}], got ${numLayers}`);
  }
  // mapBlock leaves weightT out: it is for frozen weights only, and these are to be trained.
  const clone = (t: tf.Tensor) => tf.clone(t);
  const blocks = new Map<number, DecoderBlockWeights>();
  for (let i = n - numLayers; i < n; i++) blocks.set(i, family.mapBlock(model.blocks[i], i, clone));
  return { kind: 'last_layers', numLayers, blocks, lnF: family.mapFinalNorm(family.finalNormOf(model), clone), baseModel };
}
