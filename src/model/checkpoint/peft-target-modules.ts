import { InvalidArgument } from '../../common/errors.js';
import type { FamilyModules } from '../family-modules.js';
import type { GptConfig } from '../gpt-config.js';

type Json = Record<string, unknown>;

/**
 * The modules (`${layer}.${target}`) a LoRA adapter_config.json (`raw`, read
 * from `file`) selects, by PEFT's rules (tuners_utils.py
 * `check_target_module_exists`: a list entry selects a module named it or
 * ending in `.entry`; a string is a regex to fully match; `layers_to_transform`
 * then keeps those layers only), over the module names of the family's LM-head model
 * (GPT2LMHeadModel's `transformer.h.0.attn.c_attn`, LlamaForCausalLM's
 * `model.layers.0.self_attn.q_proj`).
 * @throws InvalidArgument naming the field and value for a target module the
 *   family lacks, a bad regex, layers out of range, another layers_pattern, or
 *   a selection of nothing.
 */
export function selectModules(raw: Json, config: GptConfig, family: FamilyModules, file: string): Set<string> {
  const names: { name: string; key: string; layer: number }[] = [];
  for (let i = 0; i < config.nLayer; i++) {
    for (const t of family.targets) names.push({ name: `${family.root}${family.layers}.${i}.${t}`, key: `${i}.${t}`, layer: i });
  }
  const matcher = (field: string, spec: unknown): ((name: string) => boolean) => {
    if (typeof spec === 'string') {
      if (spec === 'all-linear') return () => true; // every projection but the LM head
      try {
        const re = new RegExp(`^(?:${spec})$`);
        return (name) => re.test(name);
      } catch (err) {
        throw new InvalidArgument(`${file}: \`${field}\` is not a valid regular expression: ${JSON.stringify(spec)}`, { cause: err });
      }
    }
    if (!Array.isArray(spec) || !spec.every((s) => typeof s === 'string')) {
      throw new InvalidArgument(`${file}: \`${field}\` must be a list of module names or a regex string, got ${JSON.stringify(spec)}`);
    }
    return (name) => spec.some((s: string) => name === s || name.endsWith(`.${s}`));
  };
  const spec = raw.target_modules ?? family.defaultTargetModules; // PEFT's default for the model type
  const target = matcher('target_modules', spec);
  // Each list entry (or the regex) must name a module LoRA can adapt here; PEFT too
  // refuses target modules that match nothing.
  for (const e of typeof spec === 'string' ? [spec] : (spec as string[])) {
    const hits = typeof spec === 'string' ? target : matcher('target_modules', [e]);
    if (!names.some((n) => hits(n.name))) {
      const known = `a ${family.label} model has no such module (its LoRA targets: ${family.targetNames.join(', ')})`;
      throw new InvalidArgument(`${file}: unknown target module ${JSON.stringify(e)} in \`target_modules\`: ${known}`);
    }
  }
  const exclude = raw.exclude_modules == null ? () => false : matcher('exclude_modules', raw.exclude_modules);
  let layers: Set<number> | null = null;
  const ltt = raw.layers_to_transform;
  if (ltt != null && typeof spec !== 'string') {
    const list = typeof ltt === 'number' ? [ltt] : ltt;
    if (!Array.isArray(list) || !list.every((l) => Number.isInteger(l) && l >= 0)) {
      throw new InvalidArgument(`${file}: \`layers_to_transform\` must be a layer index or a list of them, got ${JSON.stringify(ltt)}`);
    }
    const out = list.find((l) => l >= config.nLayer);
    if (out !== undefined) throw new InvalidArgument(`${file}: \`layers_to_transform\`: layer index ${out} is out of range (the base model has n_layer=${config.nLayer})`);
    const pattern = raw.layers_pattern;
    const want = family.layers;
    if (!(pattern == null || pattern === want || (Array.isArray(pattern) && pattern.includes(want)))) {
      throw new InvalidArgument(`${file}: \`layers_pattern\` must be "${want}" for a ${family.label} model, got ${JSON.stringify(pattern)}`);
    }
    layers = new Set(list as number[]);
  }
  const selected = new Set(names.filter((n) => target(n.name) && !exclude(n.name) && (!layers || layers.has(n.layer))).map((n) => n.key));
  if (selected.size === 0) throw new InvalidArgument(`${file}: \`target_modules\` ${JSON.stringify(spec)} selects no module`);
  return selected;
}
