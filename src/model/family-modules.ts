import type * as tf from '@tensorflow/tfjs';
import { InvalidArgument } from '../common/errors.js';
import type { GptConfig } from './gpt-config.js';
import {
  type BlockWeights,
  type DecoderBlockWeights,
  type FinalNormWeights,
  gpt2BlockFromHost,
  type GptWeights,
  type HostTensors,
  isLayerNorm,
  isLlamaBlock,
  type LayerNormWeights,
  layerNormFromHost,
  type Linear,
  type Projection,
} from './gpt-weights.js';
import { llamaBlockFromHost, type LlamaBlockWeights, rmsNormFromHost, type RmsNormWeights } from './llama-weights.js';
import { GPT2_LORA_TARGETS, LLAMA_LORA_TARGETS, type LoraTarget } from './lora.js';

/**
 * A model family's modules as adapters see them: the names PEFT gives them
 * (module paths, LoRA targets, target_modules defaults), the shape of each
 * adaptable projection, and how to reach, replace and walk a block's tensors.
 * LoRA (adapter-init.ts, training/trainable.ts, merge-adapter.ts),
 * `last_layers` adapters and the PEFT files (checkpoint/peft-adapter.ts) run
 * one code path over this data, whatever the family.
 */
export interface FamilyModules {
  /** For messages: `GPT-2`, `Llama-family`. */
  readonly label: string;
  /** The decoder's module path under the LM-head model, as PEFT names modules and keys (`transformer.`, `model.`). */
  readonly root: string;
  /** What checkpoint names (hfTensorShapes) put before the block list: GPT-2's drop `transformer.`, the Llama family's keep `model.`. */
  readonly checkpointRoot: string;
  /** The block list under `root` (`h`, `layers`): PEFT's layers_pattern. */
  readonly layers: string;
  /** The final norm under `root` (`ln_f`, `norm`). */
  readonly finalNorm: string;
  /** The projections LoRA can adapt, in block order. */
  readonly targets: readonly LoraTarget[];
  /** The target_modules entries a user writes for this family, each selecting targets by PEFT's suffix rule (see targetsNamed). */
  readonly targetNames: readonly string[];
  /** PEFT's target_modules when a LoraConfig names none (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING). */
  readonly defaultTargetModules: readonly string[];
  /** PEFT's fan_in_fan_out: true for GPT-2's Conv1D weights ([in, out]), false for nn.Linear ([out, in]). */
  readonly fanInFanOut: boolean;
  /** [in, out] of a target's projection. */
  dims(config: GptConfig, target: LoraTarget): [number, number];
  projection(block: DecoderBlockWeights, target: LoraTarget): Projection;
  /** A shallow copy of `block` with the target's projection replaced. */
  withProjection(block: DecoderBlockWeights, target: LoraTarget, p: Projection): DecoderBlockWeights;
  /**
   * A block of the same structure with every weight, bias and norm gain
   * replaced by `f` of it, called in a fixed order (checkpoint order); a
   * frozen projection's `weightT` is dropped.
   */
  mapBlock(block: DecoderBlockWeights, layer: number, f: MapTensor): DecoderBlockWeights;
  /** The final norm with each tensor replaced by `f` of it. */
  mapFinalNorm(norm: FinalNormWeights, f: MapTensor): FinalNormWeights;
  /** Uploads block `layer` of a checkpoint (its names as hfTensorShapes gives them). */
  blockFromHost(config: GptConfig, host: HostTensors, layer: number): DecoderBlockWeights;
  finalNormFromHost(host: HostTensors): FinalNormWeights;
  finalNormOf(weights: GptWeights): FinalNormWeights;
}

/** What a tensor of a block or final norm is, for the code that walks them. */
export interface TensorRole {
  /** Its checkpoint name, e.g. `h.1.attn.c_attn.weight`, `model.layers.1.self_attn.q_proj.weight`. */
  name: string;
  /** A projection's weight matrix (weight decay applies to these only). */
  matrix: boolean;
  /** Held [in, out] where the checkpoint stores [out, in] (the Llama family's nn.Linear weights). */
  transposed: boolean;
}

export type MapTensor = (t: tf.Tensor, role: TensorRole) => tf.Tensor;

/** The modules of `of`'s family (a config or weights). */
export function familyModules(of: { family?: 'gpt2' | 'llama' }): FamilyModules {
  return of.family === 'llama' ? LLAMA_MODULES : GPT2_MODULES;
}

/** The targets a target_modules entry selects: PEFT's rule, a module whose name is the entry or ends in `.entry`. */
export function targetsNamed(family: FamilyModules, entry: string): LoraTarget[] {
  return family.targets.filter((t) => t === entry || t.endsWith(`.${entry}`));
}

/**
 * The targets that target_modules entries (`field`, e.g. `target_modules`) select; none
 * given: PEFT's default for the family.
 * @throws InvalidArgument naming the entry when it is not one of the family's names.
 */
export function targetsFromNames(family: FamilyModules, names: readonly string[], field = 'target_modules'): LoraTarget[] {
  const selected = new Set<LoraTarget>();
  const entries = names.length > 0 ? names : family.defaultTargetModules;
  entries.forEach((name, i) => {
    if (!family.targetNames.includes(name)) {
      const note = `(the LoRA targets of a ${family.label} model)`;
      throw new InvalidArgument(`\`${field}[${i}]\` must be one of ${family.targetNames.join(', ')}, got ${JSON.stringify(name)} ${note}`);
    }
    for (const t of targetsNamed(family, name)) selected.add(t);
  });
  return family.targets.filter((t) => selected.has(t));
}

/**
 * Checks that each of `targets` is a projection of the family's blocks.
 * @throws InvalidArgument naming the first that is not.
 */
export function checkTargets(family: FamilyModules, targets: readonly string[], field = 'target_modules'): asserts targets is LoraTarget[] {
  for (const t of targets) {
    if (!(family.targets as readonly string[]).includes(t)) {
      const note = `(a ${family.label} model has no module ${JSON.stringify(t)})`;
      throw new InvalidArgument(`\`${field}\` entries must be among ${family.targets.join(', ')}, got ${JSON.stringify(t)} ${note}`);
    }
  }
}

/**
 * The shortest target_modules list that selects exactly `targets` (as PEFT
 * users write them: `c_proj` for both of GPT-2's projections, bare names).
 */
export function targetModuleNames(family: FamilyModules, targets: readonly LoraTarget[]): string[] {
  const names: string[] = [];
  const covered = new Set<LoraTarget>();
  for (const name of family.targetNames) {
    const hits = targetsNamed(family, name);
    if (hits.every((t) => targets.includes(t)) && hits.some((t) => !covered.has(t))) {
      names.push(name);
      hits.forEach((t) => covered.add(t));
    }
  }
  return names;
}

// --- GPT-2 ---

type Gpt2Target = (typeof GPT2_LORA_TARGETS)[number];

const GPT2_FIELDS: Record<Gpt2Target, 'c_attn' | 'attn_c_proj' | 'c_fc' | 'mlp_c_proj'> = {
  'attn.c_attn': 'c_attn',
  'attn.c_proj': 'attn_c_proj',
  'mlp.c_fc': 'c_fc',
  'mlp.c_proj': 'mlp_c_proj',
};

// BlockWeights fields -> Hugging Face module names within `h.{i}.`, in checkpoint order.
const GPT2_BLOCK_MODULES: [keyof BlockWeights, string][] = [
  ['ln_1', 'ln_1'], ['c_attn', 'attn.c_attn'], ['attn_c_proj', 'attn.c_proj'], ['ln_2', 'ln_2'], ['c_fc', 'mlp.c_fc'], ['mlp_c_proj', 'mlp.c_proj'],
];

function gpt2Block(block: DecoderBlockWeights): BlockWeights {
  if (isLlamaBlock(block)) throw new Error('a Llama-family block where a GPT-2 block belongs');
  return block;
}

function gpt2Field(target: LoraTarget): (typeof GPT2_FIELDS)[Gpt2Target] {
  const field = GPT2_FIELDS[target as Gpt2Target];
  if (!field) throw new Error(`GPT-2 has no module \`${target}\``);
  return field;
}

/** Weight and bias of a LayerNorm or Conv1D, through `f`. */
function mapPair(m: LayerNormWeights | Linear, name: string, matrix: boolean, f: MapTensor) {
  return {
    weight: f(m.weight, { name: `${name}.weight`, matrix, transposed: false }),
    bias: f(m.bias, { name: `${name}.bias`, matrix: false, transposed: false }) as tf.Tensor1D,
  };
}

export const GPT2_MODULES: FamilyModules = {
  label: 'GPT-2',
  root: 'transformer.',
  checkpointRoot: '',
  layers: 'h',
  finalNorm: 'ln_f',
  targets: GPT2_LORA_TARGETS,
  targetNames: ['c_attn', 'c_proj', 'attn.c_proj', 'c_fc', 'mlp.c_proj'],
  defaultTargetModules: ['c_attn'],
  fanInFanOut: true,
  dims(config, target) {
    const d = config.nEmbd;
    const dims: Record<string, [number, number]> = { c_attn: [d, 3 * d], attn_c_proj: [d, d], c_fc: [d, 4 * d], mlp_c_proj: [4 * d, d] };
    return dims[gpt2Field(target)];
  },
  projection: (block, target) => gpt2Block(block)[gpt2Field(target)],
  withProjection(block, target, p) {
    if (!p.bias) throw new Error(`GPT-2's \`${target}\` has a bias`);
    return { ...gpt2Block(block), [gpt2Field(target)]: { ...p, bias: p.bias } };
  },
  mapBlock(block, layer, f) {
    const b = gpt2Block(block);
    const out: Partial<Record<keyof BlockWeights, unknown>> = {};
    for (const [field, hf] of GPT2_BLOCK_MODULES) out[field] = mapPair(b[field], `h.${layer}.${hf}`, !hf.startsWith('ln_'), f);
    return out as BlockWeights;
  },
  mapFinalNorm(norm, f) {
    if (!isLayerNorm(norm)) throw new Error('an RMSNorm where GPT-2 has a LayerNorm');
    return mapPair(norm, 'ln_f', false, f) as LayerNormWeights;
  },
  blockFromHost: (_config, host, layer) => gpt2BlockFromHost(host, layer),
  finalNormFromHost: (host) => layerNormFromHost(host, 'ln_f'),
  finalNormOf(weights) {
    if (weights.family === 'llama') throw new Error('Llama-family weights where GPT-2 weights belong');
    return weights.ln_f;
  },
};

// --- Llama family ---

type LlamaTarget = (typeof LLAMA_LORA_TARGETS)[number];
type AttnName = 'q_proj' | 'k_proj' | 'v_proj' | 'o_proj';
type MlpName = 'gate_proj' | 'up_proj' | 'down_proj';

function llamaBlock(block: DecoderBlockWeights): LlamaBlockWeights {
  if (!isLlamaBlock(block)) throw new Error('a GPT-2 block where a Llama-family block belongs');
  return block;
}

interface Slot {
  get(b: LlamaBlockWeights): Projection;
  set(b: LlamaBlockWeights, p: Projection): LlamaBlockWeights;
}
const attnSlot = (name: AttnName): Slot => ({ get: (b) => b.self_attn[name], set: (b, p) => ({ ...b, self_attn: { ...b.self_attn, [name]: p } }) });
const mlpSlot = (name: MlpName): Slot => ({ get: (b) => b.mlp[name], set: (b, p) => ({ ...b, mlp: { ...b.mlp, [name]: p } }) });
const LLAMA_SLOTS: Record<LlamaTarget, Slot> = {
  'self_attn.q_proj': attnSlot('q_proj'),
  'self_attn.k_proj': attnSlot('k_proj'),
  'self_attn.v_proj': attnSlot('v_proj'),
  'self_attn.o_proj': attnSlot('o_proj'),
  'mlp.gate_proj': mlpSlot('gate_proj'),
  'mlp.up_proj': mlpSlot('up_proj'),
  'mlp.down_proj': mlpSlot('down_proj'),
};

function llamaSlot(target: LoraTarget): Slot {
  const slot = LLAMA_SLOTS[target as LlamaTarget];
  if (!slot) throw new Error(`a Llama-family model has no module \`${target}\``);
  return slot;
}

export const LLAMA_MODULES: FamilyModules = {
  label: 'Llama-family',
  root: 'model.',
  checkpointRoot: 'model.',
  layers: 'layers',
  finalNorm: 'norm',
  targets: LLAMA_LORA_TARGETS,
  targetNames: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  // PEFT's mapping has the same entry for llama, mistral, qwen2 and qwen3.
  defaultTargetModules: ['q_proj', 'v_proj'],
  fanInFanOut: false,
  dims(config, target) {
    if (config.family !== 'llama') throw new Error('a GPT-2 config where a Llama-family config belongs');
    const { nEmbd: d, nInner: inner } = config;
    const q = config.nHead * config.headDim;
    const kv = config.nKvHead * config.headDim;
    const dims: Record<LlamaTarget, [number, number]> = {
      'self_attn.q_proj': [d, q], 'self_attn.k_proj': [d, kv], 'self_attn.v_proj': [d, kv], 'self_attn.o_proj': [q, d],
      'mlp.gate_proj': [d, inner], 'mlp.up_proj': [d, inner], 'mlp.down_proj': [inner, d],
    };
    llamaSlot(target);
    return dims[target as LlamaTarget];
  },
  projection: (block, target) => llamaSlot(target).get(llamaBlock(block)),
  withProjection: (block, target, p) => llamaSlot(target).set(llamaBlock(block), p),
  mapBlock(block, layer, f) {
    const b = llamaBlock(block);
    const p = `model.layers.${layer}.`;
    const norm = (n: RmsNormWeights, name: string): RmsNormWeights => ({
      weight: f(n.weight, { name: `${p}${name}.weight`, matrix: false, transposed: false }) as tf.Tensor1D,
    });
    const lin = (l: Projection, name: string): Projection => ({
      weight: f(l.weight, { name: `${p}${name}.weight`, matrix: true, transposed: true }) as tf.Tensor2D,
      ...(l.bias ? { bias: f(l.bias, { name: `${p}${name}.bias`, matrix: false, transposed: false }) as tf.Tensor1D } : {}),
    });
    const a = b.self_attn;
    // Checkpoint order (llamaTensorShapes): the fields are built in source order.
    return {
      input_layernorm: norm(b.input_layernorm, 'input_layernorm'),
      self_attn: {
        q_proj: lin(a.q_proj, 'self_attn.q_proj'),
        k_proj: lin(a.k_proj, 'self_attn.k_proj'),
        v_proj: lin(a.v_proj, 'self_attn.v_proj'),
        o_proj: lin(a.o_proj, 'self_attn.o_proj'),
        ...(a.q_norm ? { q_norm: norm(a.q_norm, 'self_attn.q_norm') } : {}),
        ...(a.k_norm ? { k_norm: norm(a.k_norm, 'self_attn.k_norm') } : {}),
      },
      post_attention_layernorm: norm(b.post_attention_layernorm, 'post_attention_layernorm'),
      mlp: { gate_proj: lin(b.mlp.gate_proj, 'mlp.gate_proj'), up_proj: lin(b.mlp.up_proj, 'mlp.up_proj'), down_proj: lin(b.mlp.down_proj, 'mlp.down_proj') },
    };
  },
  mapFinalNorm(norm, f) {
    if (isLayerNorm(norm)) throw new Error('a LayerNorm where the Llama family has an RMSNorm');
    return { weight: f(norm.weight, { name: 'model.norm.weight', matrix: false, transposed: false }) as tf.Tensor1D };
  },
  blockFromHost(config, host, layer) {
    if (config.family !== 'llama') throw new Error('a GPT-2 config where a Llama-family config belongs');
    return llamaBlockFromHost(config, host, layer);
  },
  finalNormFromHost: (host) => rmsNormFromHost(host, 'model.norm'),
  finalNormOf(weights) {
    if (weights.family !== 'llama') throw new Error('GPT-2 weights where Llama-family weights belong');
    return weights.norm;
  },
};
