/**
 * What the serving benchmark serves: a base model folder (the embedded
 * models/gentune-mini when it is there, else a seeded random model of its
 * size, or a GPT-2-small-shaped one) and random LoRA adapters in the store's
 * layout. Random weights decode at the speed of trained ones.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { defaultConfig, type GentuneConfig, type LimitsConfig } from '../../src/engine/config.js';
import { type Adapter, disposeAdapter } from '../../src/model/adapter.js';
import { initLoraAdapter } from '../../src/model/adapter-init.js';
import { saveAdapter } from '../../src/model/checkpoint/peft-adapter.js';
import { randomGpt2Tensors, writeGpt2Folder } from '../../src/model/checkpoint/hf-gpt2-folder.js';
import { GPT2_SMALL, type Gpt2Config, type GptConfig } from '../../src/model/gpt-config.js';
import type { LoraTarget } from '../../src/model/lora.js';
import { ByteLevelBpe, END_OF_TEXT } from '../../src/model/tokenizer/byte-level-bpe.js';
import { BYTE_TO_UNICODE } from '../../src/model/tokenizer/bytes-to-unicode.js';
import { saveTokenizer } from '../../src/model/tokenizer/load-tokenizer.js';

/** The shape of the embedded default model (scripts/pretrain.ts defaults). */
export const EMBEDDED: Gpt2Config = { nEmbd: 192, nLayer: 4, nHead: 6, nPositions: 256, vocabSize: 2048, layerNormEpsilon: 1e-5, activationFunction: 'gelu_new' };
/** Where the embedded model lives when it has been built. */
export const EMBEDDED_DIR = 'models/gentune-mini';

/**
 * A byte-level tokenizer with `vocabSize` ids and no merges: ids 0..255 are
 * the bytes, 256..vocabSize-2 two-byte tokens (so every id a random model
 * samples decodes), the last `<|endoftext|>`.
 */
export function syntheticTokenizer(vocabSize: number): ByteLevelBpe {
  const vocab = new Map<string, number>();
  for (let b = 0; b < 256; b++) vocab.set(BYTE_TO_UNICODE[b]!, b);
  for (let id = 256, i = 0; id < vocabSize - 1; id++, i++) vocab.set(BYTE_TO_UNICODE[32 + ((i >> 8) % 224)]! + BYTE_TO_UNICODE[i & 255]!, id);
  vocab.set(END_OF_TEXT, vocabSize - 1);
  return new ByteLevelBpe({ vocab, merges: [], source: 'synthetic' });
}

/** A seeded random model folder (HF layout with tokenizer) of shape `config` in a fresh temp dir. */
export async function writeRandomModel(config: Gpt2Config, name: string, seed = 1): Promise<string> {
  const dir = join(await mkdtemp(join(tmpdir(), 'gentune-bench-model-')), name);
  await writeGpt2Folder(dir, config, randomGpt2Tensors(config, seed));
  await saveTokenizer(dir, syntheticTokenizer(config.vocabSize));
  return dir;
}

/**
 * `embedded` (models/gentune-mini, else random of its size), `gpt2` (random
 * GPT-2 small) or a folder path. `temporary` is set when the folder was
 * written here: remove it when done.
 */
export async function resolveModel(spec: string): Promise<{ dir: string; source: string; temporary?: string }> {
  const random = async (config: Gpt2Config, name: string, source: string) => {
    const dir = await writeRandomModel(config, name);
    return { dir, source, temporary: dirname(dir) };
  };
  if (spec === 'embedded') {
    const whole = ['config.json', 'model.safetensors'].every((f) => existsSync(join(EMBEDDED_DIR, f)));
    const tok = existsSync(join(EMBEDDED_DIR, 'tokenizer.json')) || existsSync(join(EMBEDDED_DIR, 'vocab.json'));
    if (whole && tok) return { dir: EMBEDDED_DIR, source: EMBEDDED_DIR };
    return random(EMBEDDED, 'gentune-mini-random', 'random weights, gentune-mini shape');
  }
  if (spec === 'gpt2') return random(GPT2_SMALL, 'gpt2-small-random', 'random weights, GPT-2 small shape');
  return { dir: spec, source: spec };
}

/** LoRA settings of the benchmark's adapters: a typical serving adapter. */
const LORA = { r: 8, loraAlpha: 16, loraDropout: 0, targetModules: ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'] as LoraTarget[], useRslora: false };

/** A random (non-zero) LoRA adapter for `config`; the caller disposes it. */
export function randomLora(config: GptConfig, seed: number, baseModel: string): Adapter {
  return initLoraAdapter(config, LORA, { seed, init: false, baseModel });
}

/**
 * Writes an adapter version as another replica would: the whole folder under
 * a hidden name in `<adaptersDir>/<name>/`, then renamed into place. Returns
 * the time of the rename (performance.now()).
 */
export async function publishVersion(adaptersDir: string, name: string, version: number, adapter: Adapter, config: GptConfig): Promise<number> {
  const tmp = join(adaptersDir, name, `.tmp-bench-${randomBytes(4).toString('hex')}`);
  await saveAdapter(tmp, adapter, config);
  await rename(tmp, join(adaptersDir, name, String(version)));
  return performance.now();
}

/** Writes `names` as version 1 each (random LoRA, seeds from `seed`). */
export async function writeAdapters(adaptersDir: string, names: string[], config: GptConfig, baseModel: string, seed = 1000): Promise<void> {
  for (const [i, name] of names.entries()) {
    const a = randomLora(config, seed + i, baseModel);
    try {
      await publishVersion(adaptersDir, name, 1, a, config);
    } finally {
      disposeAdapter(a);
    }
  }
}

/**
 * A server config for a benchmark: the defaults, on 127.0.0.1 with free ports
 * (port 0), warn-level logs, and `limits` over the default limits.
 */
export function benchConfig(settings: Partial<Omit<GentuneConfig, 'limits'>> & Pick<GentuneConfig, 'dataDir' | 'model'>, limits: Partial<LimitsConfig> = {}): GentuneConfig {
  const base = defaultConfig();
  return { ...base, host: '127.0.0.1', port: 0, metricsPort: 0, logLevel: 'warn', ...settings, limits: { ...base.limits, ...limits } };
}
