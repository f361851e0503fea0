/**
 * Fixtures of the engine tests: a tiny seeded model folder with a byte-level
 * tokenizer, a fresh data directory, a config pointing at both, and helpers
 * to drive the engine's streaming calls.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { pino } from 'pino';
import { defaultConfig, type GentuneConfig, type LimitsConfig } from '../../../src/engine/config.js';
import type { GenerateChunk, GenerateParams, JobEvent, SamplingParams } from '../../../src/engine/engine-api.js';
import type { Engine } from '../../../src/engine/engine-api.js';
import { kvCacheMemory } from '../../../src/model/kernels/kv-arena.js';
import { saveTokenizer } from '../../../src/model/tokenizer/load-tokenizer.js';
import { byteTokenizer } from '../../helpers/byte-tokenizer.js';
import { testBackend, TINY, tinyModelFolder } from '../../helpers/tiny-model.js';

/** Where the engine under test runs: in a serving worker (createEngine's default) or on this thread (`threads: false`). */
export type EngineMode = 'threaded' | 'in-process';

/** Both modes, for tests that run once in each. */
export const ENGINE_MODES: readonly EngineMode[] = ['threaded', 'in-process'];

/** What a leak test compares: tensors, and KV cache pages (held outside tensors, in wasm memory). */
export interface ServingMemory {
  tensors: number;
  /** Bytes of KV cache pages in use by sequences (host backends; 0 elsewhere). */
  kvCacheBytesInUse: number;
}

/**
 * Memory held on the thread that holds `engine`'s model, for leak tests.
 * In-process that is this thread: tf.memory() and the KV arenas. Threaded,
 * this thread holds none (it never loads the model), so tf.memory() here
 * proves nothing; the serving worker's gauges come with every reply it
 * posts, read as the reply goes out, so after the round trip made here
 * engine.info() gives the worker's memory as of now. A fine-tune job's
 * worker holds its own tensors and is gone once the job has ended.
 */
export async function servingMemory(engine: Engine, mode: EngineMode): Promise<ServingMemory> {
  if (mode === 'in-process') return { tensors: tf.memory().numTensors, kvCacheBytesInUse: kvCacheMemory().kvCacheBytesInUse };
  await engine.listAdapters();
  const m = engine.info().deviceMemory;
  return { tensors: m.numTensors, kvCacheBytesInUse: m.kvCacheBytesInUse ?? 0 };
}

/** A logger that writes nothing. */
export const silentLog = pino({ level: 'silent' });

/** A tiny model folder (TINY shape, seed 7) with tokenizer files. */
export async function tinyModelWithTokenizer(seed = 7): Promise<string> {
  const dir = await tinyModelFolder(TINY, seed);
  await saveTokenizer(dir, byteTokenizer());
  return dir;
}

/** A fresh empty directory. */
export function tempDir(prefix = 'gentune-engine-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** A config over `model` and `dataDir`, on the test backend, logging nothing. */
export async function testConfig(model: string, dataDir: string, limits: Partial<LimitsConfig> = {}): Promise<GentuneConfig> {
  const backend = (await testBackend()) as GentuneConfig['backend'];
  const base = defaultConfig();
  return { ...base, model, dataDir, backend, logLevel: 'silent', limits: { ...base.limits, ...limits } };
}

/** Greedy sampling, `maxNewTokens` tokens. */
export function greedy(maxNewTokens = 8, over: Partial<SamplingParams> = {}): SamplingParams {
  return { maxNewTokens, temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0, stop: [], ...over };
}

/** A GenerateParams with defaults for everything but the prompt. */
export function genParams(prompt: GenerateParams['prompt'], over: Partial<GenerateParams> = {}): GenerateParams {
  return { requestId: 'test', prompt, adapter: null, sampling: greedy(), logprobs: false, topLogprobs: 0, ...over };
}

/** Every chunk of a generation. */
export async function collect(engine: Engine, params: GenerateParams, signal = new AbortController().signal): Promise<GenerateChunk[]> {
  const chunks: GenerateChunk[] = [];
  for await (const c of engine.generate(params, signal)) chunks.push(c);
  return chunks;
}

/** Generated ids and text of a finished generation, with its last chunk. */
export function summary(chunks: GenerateChunk[]): { ids: number[]; text: string; last: GenerateChunk } {
  return { ids: chunks.flatMap((c) => c.tokenIds), text: chunks.map((c) => c.text).join(''), last: chunks[chunks.length - 1] };
}

/** Every event of a job until its terminal one. */
export async function watchAll(engine: Engine, jobId: string, from = 0): Promise<JobEvent[]> {
  const events: JobEvent[] = [];
  for await (const e of engine.watchJob(jobId, from, new AbortController().signal)) events.push(e);
  return events;
}

/** Bytes as an async stream of chunks of `size` bytes. */
export async function* chunked(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.slice(i, i + size);
}

/** JSONL bytes of some lines. */
export function jsonl(lines: unknown[]): Uint8Array {
  return Buffer.from(lines.map((l) => JSON.stringify(l)).join('\n') + '\n', 'utf8');
}
