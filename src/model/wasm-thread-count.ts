import { availableParallelism } from 'node:os';
import { hfTensorShapes, type GptConfig } from './gpt-config.js';

/** Below this many parameters a model's decode step is dispatch-bound: one wasm thread. */
export const THREADED_MIN_PARAMETERS = 20_000_000;

/** Most threads `auto` asks for (only 1 and 2 were measured, on the 2-core development machine). */
const AUTO_MAX_THREADS = 4;

/**
 * Threads of the wasm backend for `--wasm-threads auto`. A small model's
 * decode step is hundreds of tiny kernels, where handing work to a second
 * thread costs more than it saves (gentune-mini, 2.2M parameters: batch 1
 * 1.4-2.3x slower with 2 threads, bench/results/decode-threads.json); a
 * GPT-2-small-sized model's matMuls are large enough to split (2 threads:
 * 1.4x faster at batch 1, 1.6x at batch 8, bench/results/decode-threads-gpt2.json).
 */
export function autoWasmThreads(config: GptConfig, cores = availableParallelism()): number {
  let parameters = 0;
  for (const shape of hfTensorShapes(config).values()) parameters += shape.reduce((a, b) => a * b, 1);
  if (parameters < THREADED_MIN_PARAMETERS) return 1;
  return Math.max(1, Math.min(cores, AUTO_MAX_THREADS));
}
