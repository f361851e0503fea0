/**
 * Messages between the fine-tune runner (in the serving thread) and a job's
 * worker (fine-tune-worker.ts). All small: the job's spec, where to read its
 * data, progress events, log lines, and the adapter version it stored. No
 * tensor crosses: the worker loads its own copy of the base model and hands
 * the adapter over through the adapter store on disk.
 */
import type { BackendName } from '../../model/backend.js';
import type { EvaluationEvent, ProgressEvent, StartEvent } from '../../training/trainer.js';
import type { LossEvaluation } from '../../training/evaluate-loss.js';
import type { FineTuneSpec } from '../engine-api.js';
import type { LeaseRef } from '../job-lease.js';
import type { WireError } from './wire-error.js';

/** The worker's `workerData`. */
export interface FineTuneWorkerInput {
  jobId: string;
  spec: FineTuneSpec;
  /** The backend the serving engine chose (never 'auto': both threads use the same one). */
  backend: BackendName;
  /** Dawn's options on the webgpu backend (config `dawnOptions`), as the serving engine used them. */
  dawnOptions: string[];
  /** Base model folder in Hugging Face layout (GPT-2 or Llama family), absolute. */
  modelDir: string;
  /** JSONL file of every stored dataset the job reads, by id. */
  datasetFiles: Record<string, string>;
  /** The adapter store's root (`<dataDir>/adapters`): the worker stores the adapter there as the next version. */
  adaptersDir: string;
  /** The job's checkpoint file: resumed from when present, written by the worker at every checkpoint. */
  checkpointPath: string;
  /** Training milliseconds between checkpoints (0: every step). */
  checkpointIntervalMs: number;
  /** The lease the runner holds for the job: the adapter is stored only while it is still held. */
  lease?: LeaseRef;
  /** The serving thread's log level and bindings (the worker's lines are written by its logger). */
  logLevel: string;
  logBindings: Record<string, unknown>;
}

/** Runner -> worker. */
export type ToFineTuneWorker =
  /** Stop at the next step boundary and end with status 'cancelled'. */
  | { t: 'cancel'; reason: WireError }
  /** Shutdown: save a checkpoint at the next step boundary, then end with status 'suspended'. */
  | { t: 'suspend' };

/** Worker -> runner, in the order they happen; 'end' or 'failed' comes last. */
export type FromFineTuneWorker =
  | { t: 'started'; event: StartEvent }
  | { t: 'progress'; event: ProgressEvent }
  | { t: 'evaluation'; event: EvaluationEvent }
  /** The checkpoint of `step` is on disk (checkpointPath). */
  | { t: 'checkpoint'; step: number }
  /** One pino JSON line. */
  | { t: 'log'; line: string }
  | { t: 'end'; result: FineTuneWorkerResult }
  | { t: 'failed'; error: WireError };

/** How the run ended; a finished one names the version it stored. */
export type FineTuneWorkerResult =
  | { status: 'cancelled' }
  | { status: 'suspended'; step: number }
  | {
      status: 'completed' | 'early_stopped';
      /** `<adaptersDir>/<spec.adapter>/<version>/`, complete and in PEFT layout. */
      version: number;
      steps: number;
      trainLoss: number | null;
      evaluation?: LossEvaluation;
      lossTokens: number;
      trainSeconds: number;
    };
