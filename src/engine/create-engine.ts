/**
 * The engine behind ModelService: one base model resident on the backend,
 * the dataset, adapter and job stores under config.dataDir, the decode loop
 * serving Generate, and the fine-tune runner.
 *
 * Threads (DESIGN.md, "Threads: keep the event loop free"): TensorFlow.js
 * runs ops synchronously on the calling thread, and a decode step or a
 * training step would hold up every gRPC and HTTP call behind it. So by
 * default the caller gets a proxy (worker/threaded-engine.ts) that only
 * forwards calls; the engine itself, wired in gentune-engine.ts, runs
 * in a serving worker thread (worker/engine-worker.ts), and each fine-tune
 * job in a worker of its own (worker/fine-tune-thread.ts). The calling
 * thread then never loads TensorFlow.js. `threads: false` builds the same
 * engine on the calling thread, training included.
 */
import type { GentuneConfig } from './config.js';
import type { Engine } from './engine-api.js';

import type { EngineOptions } from './engine-options.js';

export type { EngineOptions } from './engine-options.js';

/**
 * Initialises the backend, loads the base model, opens the stores and returns
 * the engine: in a serving worker thread behind a proxy (default), or on the
 * calling thread with `threads: false`.
 */
export async function createEngine(config: GentuneConfig, options: EngineOptions = {}): Promise<Engine> {
  if (options.threads === false) {
    const { buildEngine } = await import('./gentune-engine.js');
    return buildEngine(config, options, { jobsInWorkers: false, startedAtMs: Date.now() });
  }
  const { startThreadedEngine } = await import('./worker/threaded-engine.js');
  return startThreadedEngine(config, options);
}
