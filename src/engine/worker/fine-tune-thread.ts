/**
 * Runs each fine-tune job in a worker thread of its own (fine-tune-worker.ts),
 * for the runner in the serving thread: starts the worker with the job's
 * spec and data files, turns its messages back into the runner's callbacks
 * (in order, each awaited) and its log lines into ours, and on success has
 * the version it stored published from the store (`adopt`). Cancellation is
 * a message (the trainer stops at a step boundary), and so is a suspend (the
 * worker writes the job's checkpoint at the next step boundary, then stops);
 * shutdown past its grace period terminates the worker at once, since
 * nothing it holds outlives it (a half-written version or checkpoint is a
 * hidden temporary file or folder, never a version or a checkpoint).
 */
import type { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { Cancelled } from '../../common/errors.js';
import type { BackendName } from '../../model/backend.js';
import type { DataSource } from '../engine-api.js';
import type { FineTuneWorkerInput, FineTuneWorkerResult, FromFineTuneWorker, ToFineTuneWorker } from './fine-tune-protocol.js';
import type { JobCallbacks, JobToTrain, JobTrainer, JobTrainResult } from '../job-training.js';
import { lineWriter } from './log-relay.js';
import { startWorker } from './start-worker.js';
import { fromWireError, toWireError } from './wire-error.js';
import { datasetDataPath } from '../dataset-store.js';

/** Where a job worker finds what it needs. */
export interface WorkerTrainerOptions {
  /** Base model folder, absolute (the worker loads its own copy). */
  modelDir: string;
  /** The backend the serving engine runs on. */
  backend: BackendName;
  /** Dawn's options on the webgpu backend (config `dawnOptions`). */
  dawnOptions: string[];
  /** `<dataDir>/datasets` (see datasetDataPath). */
  datasetsDir: string;
  /** `<dataDir>/adapters`. */
  adaptersDir: string;
  /** Training milliseconds between a job's checkpoints (0: every step). */
  checkpointIntervalMs: number;
  /**
   * Publishes a version a job worker stored: makes the serving store see it
   * and the registry hold it, as a version published in-process would be.
   */
  adopt(name: string, version: number): Promise<void>;
  log: Logger;
}

/** A JobTrainer that trains every job in a fresh worker thread. */
export function workerTrainer(options: WorkerTrainerOptions): JobTrainer {
  return (job, callbacks, { signal, suspend }) => {
    if (signal.aborted) return Promise.reject(signal.reason);
    const sources: DataSource[] = [job.spec.training];
    if (job.spec.validationDatasetId !== undefined) sources.push({ datasetId: job.spec.validationDatasetId });
    const datasetFiles: Record<string, string> = {};
    for (const s of sources) if ('datasetId' in s) datasetFiles[s.datasetId] = datasetDataPath(options.datasetsDir, s.datasetId);
    const input: FineTuneWorkerInput = {
      jobId: job.id,
      spec: job.spec,
      backend: options.backend,
      dawnOptions: options.dawnOptions,
      modelDir: options.modelDir,
      datasetFiles,
      adaptersDir: options.adaptersDir,
      checkpointPath: job.checkpointPath,
      lease: job.lease,
      checkpointIntervalMs: options.checkpointIntervalMs,
      logLevel: options.log.level,
      logBindings: { ...options.log.bindings(), jobId: job.id },
    };
    const worker = startWorker('fine-tune-worker', import.meta.url, { workerData: input, name: `gentune fine-tune ${job.id}` });
    return new JobThread(job, worker, callbacks, signal, suspend, options).result;
  };
}

/** One job's worker, from start to its last message. */
class JobThread {
  readonly result: Promise<JobTrainResult>;
  /** Messages are handled one after another: each callback appends to the job's durable log. */
  private handled: Promise<void> = Promise.resolve();
  private settled = false;
  private resolve!: (result: JobTrainResult) => void;
  private reject!: (err: unknown) => void;
  private readonly writeLine: (line: string) => void;

  constructor(
    private readonly job: JobToTrain,
    private readonly worker: Worker,
    private readonly callbacks: JobCallbacks,
    private readonly signal: AbortSignal,
    private readonly suspend: AbortSignal,
    private readonly options: WorkerTrainerOptions,
  ) {
    this.writeLine = lineWriter(options.log);
    const settled = new Promise<JobTrainResult>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // Callers see the outcome only once every event before it is in the log.
    this.result = settled.finally(() => this.handled.catch(() => undefined));
    worker.on('message', (m: FromFineTuneWorker) => {
      if (m.t === 'log') return this.writeLine(m.line);
      this.handled = this.handled.then(() => this.handle(m)).catch((err: unknown) => this.fail(err));
    });
    worker.on('error', (err) => this.fail(err));
    worker.on('exit', (code) => this.fail(new Error(`the fine-tune worker exited with code ${code} before it finished`)));
    signal.addEventListener('abort', this.onAbort, { once: true });
    if (suspend.aborted) this.onSuspend();
    else suspend.addEventListener('abort', this.onSuspend, { once: true });
  }

  private readonly onSuspend = (): void => {
    if (!this.settled) this.worker.postMessage({ t: 'suspend' } satisfies ToFineTuneWorker);
  };

  private readonly onAbort = (): void => {
    const reason: unknown = this.signal.reason;
    if (reason instanceof Cancelled) {
      // A user's cancel: the trainer stops at the next step boundary and reports it.
      this.worker.postMessage({ t: 'cancel', reason: toWireError(reason) } satisfies ToFineTuneWorker);
    } else {
      // Shutdown: no terminal event is written, so there is nothing to wait for.
      this.fail(reason);
    }
  };

  private async handle(m: FromFineTuneWorker): Promise<void> {
    if (this.settled) return;
    switch (m.t) {
      case 'started':
        return this.callbacks.onStart(m.event);
      case 'progress':
        return this.callbacks.onProgress(m.event);
      case 'evaluation':
        return this.callbacks.onEvaluation(m.event);
      case 'checkpoint':
        return this.callbacks.onCheckpoint({ step: m.step });
      case 'log':
        return;
      case 'failed':
        return this.fail(fromWireError(m.error));
      case 'end':
        return this.succeed(await this.collect(m.result));
    }
  }

  /** The worker's result -> the runner's, once the version it stored is published here. */
  private async collect(result: FineTuneWorkerResult): Promise<JobTrainResult> {
    await this.stop();
    if (result.status === 'cancelled' || result.status === 'suspended') return result;
    const { version, ...rest } = result;
    await this.options.adopt(this.job.spec.adapter, version);
    return { ...rest, storedVersion: version };
  }

  private succeed(result: JobTrainResult): void {
    if (this.settled) return;
    this.settled = true;
    this.signal.removeEventListener('abort', this.onAbort);
    this.suspend.removeEventListener('abort', this.onSuspend);
    this.resolve(result);
  }

  private fail(err: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.signal.removeEventListener('abort', this.onAbort);
    this.suspend.removeEventListener('abort', this.onSuspend);
    void this.stop();
    this.reject(err);
  }

  private stop(): Promise<number> {
    this.worker.removeAllListeners('exit');
    return this.worker.terminate();
  }
}
