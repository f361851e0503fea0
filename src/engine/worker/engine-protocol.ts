/**
 * Messages between the main thread (threaded-engine.ts, the Engine the gRPC
 * server calls) and the serving worker (engine-worker.ts, which hosts the
 * in-process engine). Requests and results are the engine's own plain
 * objects; errors travel as WireErrors. The worker answers in batches, one
 * postMessage per event-loop turn, carrying replies, stream items, metric
 * events and log lines together.
 */
import type { DatasetUploadMeta, Engine, ServerInfo } from '../engine-api.js';
import type { GentuneConfig } from '../config.js';
import type { MetricEvent, SnapshotValues } from './metrics-relay.js';
import type { WireError } from './wire-error.js';

/** Engine methods that return one promise. */
export type CallMethod =
  | 'evaluate'
  | 'submitFineTune'
  | 'getJob'
  | 'listJobs'
  | 'cancelJob'
  | 'jobEvents'
  | 'listDatasets'
  | 'deleteDataset'
  | 'datasetContent'
  | 'listAdapters'
  | 'loadAdapter'
  | 'unloadAdapter'
  | 'deleteAdapter'
  | 'setAdapterAlias'
  | 'drain';

/** Engine methods that return an async iterable. */
export type StreamMethod = 'generate' | 'watchJob' | 'evaluateStream';

/** What a call resolves with. */
export type CallResult<M extends CallMethod> = Awaited<ReturnType<Engine[M]>>;

/** The worker's `workerData`. */
export interface EngineWorkerInput {
  config: GentuneConfig;
  adapterBudgetBytes?: number;
  maxConcurrentJobs?: number;
  /** The main thread's logger: its level and bindings (the worker's lines are written by the main thread). */
  logLevel: string;
  logBindings: Record<string, unknown>;
  /** Epoch milliseconds createEngine was called (ServerInfo.startedAtMs). */
  startedAtMs: number;
}

/**
 * Main -> worker. `id` numbers a call or stream, unique per engine;
 * `aborted` is the reason of a caller's signal that had aborted already.
 */
export type ToEngineWorker =
  | { t: 'call'; id: number; method: CallMethod; args: unknown[]; aborted?: WireError }
  | { t: 'stream'; id: number; method: StreamMethod; args: unknown[]; aborted?: WireError }
  /** uploadDataset: the meta; chunks follow. */
  | { t: 'upload'; id: number; meta: DatasetUploadMeta; aborted?: WireError }
  | { t: 'chunk'; id: number; data: Uint8Array }
  /** The upload's chunks ended (with the error the caller's iterable threw, if any). */
  | { t: 'chunks-end'; id: number; error?: WireError }
  /** The caller's AbortSignal aborted. */
  | { t: 'abort'; id: number; reason: WireError }
  /** The caller stopped reading a stream before its end. */
  | { t: 'close'; id: number };

/** One reply inside a batch. */
export type FromEngineWorker =
  | { t: 'ready'; info: ServerInfo; backend: { name: string; device: string }; model: string; version: string }
  | { t: 'start-failed'; error: WireError }
  | { t: 'result'; id: number; value: unknown }
  | { t: 'error'; id: number; error: WireError }
  | { t: 'items'; id: number; items: unknown[] }
  | { t: 'end'; id: number }
  /** An upload chunk was consumed: room for one more. */
  | { t: 'pull'; id: number }
  /** The engine's readiness changed (a trapped model backend: not ready until restarted). */
  | { t: 'readiness'; ready: boolean };

/** Worker -> main: everything one turn of the worker's event loop produced. */
export interface EngineWorkerBatch {
  /** Log lines (pino JSON), in order; written first. */
  logs: string[];
  /** Metric events, in order; replayed before the replies. */
  metrics: MetricEvent[];
  /** The engine's gauges as of this batch, when they were read. */
  snapshot?: SnapshotValues;
  replies: FromEngineWorker[];
}
