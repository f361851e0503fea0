/**
 * The domain interface the gRPC server calls. Plain TypeScript types, no
 * protobuf: src/server decodes and validates requests into these, calls the
 * engine, and encodes what comes back. The shapes mirror proto/gentune/v1 so
 * handlers stay thin; names are camelCase, times are epoch milliseconds.
 *
 * Contract for implementations:
 * - Throw the typed errors of src/common/errors.ts (InvalidArgument, NotFound,
 *   FailedPrecondition, ResourceExhausted, Unavailable, ...); anything else
 *   becomes INTERNAL "internal error" and is logged.
 * - Requests arrive validated: ranges, names and shapes are checked by the
 *   server (see src/server/validate.ts). The engine still checks what only it
 *   knows: prompt length after tokenization, prompt + max_new_tokens <=
 *   n_positions, token ids < vocab_size, existence of adapters / datasets /
 *   jobs, max_seq_len <= n_positions.
 * - An aborted `signal` means the client went away, the deadline passed, or
 *   the server is shutting down (`signal.reason` is a GentuneError saying
 *   which). Stop at the next step boundary and free what the call holds.
 */
import type { AdapterInfo, AdapterRef } from './api/adapters.js';
import type { DatasetInfo, DatasetUploadMeta } from './api/datasets.js';
import type { EvaluateEvent, EvaluateParams, EvaluateResult } from './api/evaluation.js';
import type { FineTuneSpec, JobEvent, JobFilter, JobInfo } from './api/fine-tune.js';
import type { GenerateChunk, GenerateParams } from './api/generation.js';
import type { ServerInfo } from './api/server-info.js';

export type * from './api/adapters.js';
export type * from './api/datasets.js';
export type * from './api/evaluation.js';
export type * from './api/fine-tune.js';
export type * from './api/generation.js';
export type * from './api/server-info.js';

/** The serving / training engine behind ModelService. */
export interface Engine {
  /** Model, backend, limits and version; cheap, synchronous. */
  info(): ServerInfo;
  /** True once the base model is loaded and requests can be served (health SERVING). */
  isReady(): boolean;

  /**
   * Streams the generation of one prompt; the last chunk carries `finish`.
   * When `signal` aborts, either end with finish.reason 'cancelled' or throw.
   * Throws ResourceExhausted when the queue is full, NotFound for an unknown adapter.
   */
  generate(req: GenerateParams, signal: AbortSignal): AsyncIterable<GenerateChunk>;

  /** Scores the base model and/or adapters on a dataset. */
  evaluate(req: EvaluateParams, signal: AbortSignal): Promise<EvaluateResult>;
  /**
   * The same work as {@link evaluate}, as a stream: progress reports after
   * each chunk of examples (per model and phase), then the result as the last
   * item. Throws what evaluate throws.
   */
  evaluateStream(req: EvaluateParams, signal: AbortSignal): AsyncIterable<EvaluateEvent>;

  /** Persists and queues a job; resolves with it in state 'queued'. */
  submitFineTune(spec: FineTuneSpec): Promise<JobInfo>;
  /**
   * Replays the job's event log from `fromSequence`, then follows it live;
   * ends after the terminal event or when `signal` aborts. NotFound if unknown.
   */
  watchJob(jobId: string, fromSequence: number, signal: AbortSignal): AsyncIterable<JobEvent>;
  /** NotFound if unknown. */
  getJob(jobId: string): Promise<JobInfo>;
  /** Newest first. */
  listJobs(filter: JobFilter): Promise<JobInfo[]>;
  /** Resolves with the job in state 'cancelled'; FailedPrecondition if already finished. */
  cancelJob(jobId: string): Promise<JobInfo>;
  /**
   * The job's event log as it stands now, oldest first (sequence 0 first),
   * without following it: a list for callers that page through history (the
   * OpenAI API's job events). NotFound if unknown.
   */
  jobEvents(jobId: string): Promise<JobEvent[]>;

  /**
   * Stores a JSONL dataset, validating every line (InvalidArgument naming the
   * line). Chunks are raw bytes, split anywhere; the server has already
   * enforced limits.maxUploadBytes. Nothing is stored if it throws.
   */
  uploadDataset(
    meta: DatasetUploadMeta,
    chunks: AsyncIterable<Uint8Array>,
    signal: AbortSignal,
  ): Promise<DatasetInfo>;
  /** Newest first. */
  listDatasets(): Promise<DatasetInfo[]>;
  /** NotFound if unknown; FailedPrecondition while a job uses it. */
  deleteDataset(datasetId: string): Promise<void>;
  /**
   * The bytes of a stored dataset exactly as uploaded (at most
   * limits.maxUploadBytes, so one buffer). NotFound if unknown.
   */
  datasetContent(datasetId: string): Promise<Uint8Array>;

  /** Sorted by name. */
  listAdapters(): Promise<AdapterInfo[]>;
  /** Loads (and pins, if asked) a version; idempotent. */
  loadAdapter(ref: AdapterRef, pin: boolean): Promise<AdapterInfo>;
  /** Unpins and frees a version (every version when ref.version is undefined); idempotent. */
  unloadAdapter(ref: AdapterRef): Promise<AdapterInfo>;
  /** Deletes a version, or every version when ref.version is undefined. */
  deleteAdapter(ref: AdapterRef): Promise<void>;
  /**
   * Points alias `alias` of adapter `name` at `version` (creating it, or
   * moving it: promotion and rollback are the same call), atomically for
   * every replica sharing the store; requests in flight keep the version
   * they resolved. NotFound when the version is not stored. Resolves with the
   * adapter, its aliases included.
   */
  setAdapterAlias(name: string, alias: string, version: number): Promise<AdapterInfo>;

  /**
   * Stops accepting work, lets running work finish within `graceMs`
   * milliseconds, then cancels it, and frees resources. The server calls it
   * after its own calls ended. A fine-tune job still running saves its
   * checkpoint at its next step boundary and stops without a terminal event:
   * the next start on the same data directory resumes it from there. Queued
   * jobs stay queued and run after the restart.
   */
  drain(graceMs: number): Promise<void>;
}
