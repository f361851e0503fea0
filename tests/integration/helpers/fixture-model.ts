/**
 * The model every integration test serves: a tiny seeded GPT-2 (2 layers,
 * width 32, 4 heads) with a 512-token context and a byte-level tokenizer
 * (ids 0..255 = bytes, 256 = <|endoftext|>), written by the test into a temp
 * folder in the Hugging Face layout.
 *
 * Its weights are random, so sampled text is noise and may hit <|endoftext|>
 * (about 1 token in 257) at any step. Tests that need a stream to run for a
 * while use {@link longGeneration}: greedy decoding from {@link LONG_PROMPT},
 * which on this model runs to the end of the context without <|endoftext|>
 * (generate.test.ts checks it, so a change of model or seed shows up there
 * first).
 */
import { rmSync } from 'node:fs';
import { mkdtemp, rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Gpt2Config } from '../../../src/model/gpt-config.js';
import { saveTokenizer } from '../../../src/model/tokenizer/load-tokenizer.js';
import { byteTokenizer } from '../../helpers/byte-tokenizer.js';
import { TINY, tinyModelFolder } from '../../helpers/tiny-model.js';

/** Shape of the fixture model. */
export const FIXTURE_MODEL: Gpt2Config = { ...TINY, nPositions: 512 };
/** Seed of its weights. */
export const FIXTURE_SEED = 1;
/** Backend the tests run the engine on (GENTUNE_TEST_BACKEND, default wasm). */
export const TEST_BACKEND = (process.env.GENTUNE_TEST_BACKEND ?? 'wasm') as 'wasm' | 'cpu' | 'webgpu' | 'tensorflow';

/** Prompt whose greedy continuation stays clear of <|endoftext|> for the whole context. */
export const LONG_PROMPT = 'Hello there';
/** The default length of {@link longGeneration}: LONG_PROMPT (11 tokens) + this fill the 512 positions exactly. */
export const LONG_MAX_NEW_TOKENS = 501;

/** The model's name (the name of its folder), as GetServerInfo and adapters report it. */
export const FIXTURE_NAME = 'tiny-gpt2';

/**
 * Writes the fixture model folder (config.json, model.safetensors, tokenizer
 * files) as `<fresh temp dir>/tiny-gpt2` and returns its path; remove it with
 * {@link removeFixtureModel}. Same seed, same weights: every copy is the same model.
 */
export async function makeFixtureModel(): Promise<string> {
  const written = await tinyModelFolder(FIXTURE_MODEL, FIXTURE_SEED);
  await saveTokenizer(written, byteTokenizer());
  const dir = join(await mkdtemp(join(tmpdir(), 'gentune-it-model-')), FIXTURE_NAME);
  await rename(written, dir);
  return dir;
}

/** Removes a folder made by {@link makeFixtureModel}. */
export function removeFixtureModel(dir: string): void {
  rmSync(dirname(dir), { recursive: true, force: true });
}

/**
 * A Generate request that streams `maxNewTokens` tokens (2 to 10 ms each on
 * wasm, with the machine's load), ending with LENGTH unless cancelled: for tests of cancellation,
 * deadlines, concurrency and shutdown.
 */
export function longGeneration(maxNewTokens = LONG_MAX_NEW_TOKENS) {
  return { prompt: LONG_PROMPT, sampling: { maxNewTokens, temperature: 0 } };
}
