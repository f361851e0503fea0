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

/**
 * How each Engine method crosses the thread boundary, one entry per method:
 * `local` (answered by the proxy itself), `call` (one request, one reply),
 * `stream` (a request, then batches of items), `upload` (a request, then a
 * stream of chunks the other way); `signal` says whether its last parameter
 * is an AbortSignal, which travels as abort messages rather than as an
 * argument. The `satisfies` clause makes the table complete and right: a
 * method added to Engine without an entry, or with the wrong kind or signal
 * flag, does not compile; and the worker dispatches any `call` or `stream`
 * method from this table alone, so there is no third list to keep.
 */
export const ENGINE_METHODS = {
  info: { kind: 'local', signal: false },
  isReady: { kind: 'local', signal: false },
  generate: { kind: 'stream', signal: true },
  evaluate: { kind: 'call', signal: true },
  evaluateStream: { kind: 'stream', signal: true },
  submitFineTune: { kind: 'call', signal: false },
  watchJob: { kind: 'stream', signal: true },
  getJob: { kind: 'call', signal: false },
  listJobs: { kind: 'call', signal: false },
  cancelJob: { kind: 'call', signal: false },
  jobEvents: { kind: 'call', signal: false },
  uploadDataset: { kind: 'upload', signal: true },
  listDatasets: { kind: 'call', signal: false },
  deleteDataset: { kind: 'call', signal: false },
  datasetContent: { kind: 'call', signal: false },
  listAdapters: { kind: 'call', signal: false },
  loadAdapter: { kind: 'call', signal: false },
  unloadAdapter: { kind: 'call', signal: false },
  deleteAdapter: { kind: 'call', signal: false },
  setAdapterAlias: { kind: 'call', signal: false },
  drain: { kind: 'call', signal: false },
} as const satisfies { [M in keyof Engine]: { kind: Kind<M>; signal: EndsWithSignal<M> } };

/** The transport kinds a method's return type allows. */
type Kind<M extends keyof Engine> =
  ReturnType<Engine[M]> extends AsyncIterable<unknown> ? 'stream' : ReturnType<Engine[M]> extends Promise<unknown> ? 'call' | 'upload' : 'local';

/** Whether a method's last parameter is an AbortSignal. */
type EndsWithSignal<M extends keyof Engine> = Parameters<Engine[M]> extends [...unknown[], AbortSignal] ? true : false;

type MethodsOf<K extends string> = { [M in keyof typeof ENGINE_METHODS]: (typeof ENGINE_METHODS)[M]['kind'] extends K ? M : never }[keyof typeof ENGINE_METHODS];

/** Engine methods that return one promise. */
export type CallMethod = MethodsOf<'call'>;

/** Engine methods that return an async iterable. */
export type StreamMethod = MethodsOf<'stream'>;

/** A method's arguments as they cross the boundary: its parameters without the trailing AbortSignal. */
export type WireArgs<M extends CallMethod | StreamMethod> = Parameters<Engine[M]> extends [...infer A, AbortSignal] ? A : Parameters<Engine[M]>;

/** What a call resolves with. */
export type CallResult<M extends CallMethod> = Awaited<ReturnType<Engine[M]>>;

/** What a stream yields. */
export type StreamItem<M extends StreamMethod> = ReturnType<Engine[M]> extends AsyncIterable<infer T> ? T : never;

/** One `call` message per method: its name and its arguments, typed together. */
type CallMessage = { [M in CallMethod]: { t: 'call'; id: number; method: M; args: WireArgs<M>; aborted?: WireError } }[CallMethod];

/** One `stream` message per method. */
type StreamMessage = { [M in StreamMethod]: { t: 'stream'; id: number; method: M; args: WireArgs<M>; aborted?: WireError } }[StreamMethod];

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
  | CallMessage
  | StreamMessage
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
