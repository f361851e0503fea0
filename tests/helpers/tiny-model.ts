import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Gpt2Config } from '../../src/model/gpt-config.js';
import { randomGpt2Tensors, writeGpt2Folder } from '../../src/model/checkpoint/hf-gpt2-folder.js';
import { type Gpt2Weights, weightsFromHost } from '../../src/model/gpt-weights.js';
import { initBackend } from '../../src/model/backend.js';

/** A tiny GPT-2 shape for tests: 2 layers, width 32, 4 heads, 64 positions, byte-level vocab (257). */
export const TINY: Gpt2Config = {
  nEmbd: 32,
  nLayer: 2,
  nHead: 4,
  nPositions: 64,
  vocabSize: 257,
  layerNormEpsilon: 1e-5,
  activationFunction: 'gelu_new',
};

/** Initialises the backend tests run on (GENTUNE_TEST_BACKEND, default wasm). */
export async function testBackend(): Promise<string> {
  const name = (process.env.GENTUNE_TEST_BACKEND ?? 'wasm') as 'wasm' | 'cpu' | 'webgpu';
  return (await initBackend(name)).name;
}

/** Seeded random weights on the backend. */
export function tinyWeights(config: Gpt2Config = TINY, seed = 1): Gpt2Weights {
  return weightsFromHost(config, randomGpt2Tensors(config, seed));
}

/** Writes a seeded random model folder (HF layout) into a fresh temp dir and returns its path. */
export async function tinyModelFolder(config: Gpt2Config = TINY, seed = 1): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gentune-tiny-'));
  await writeGpt2Folder(dir, config, randomGpt2Tensors(config, seed));
  return dir;
}
