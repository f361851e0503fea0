/**
 * Runs fine-tune jobs, first in first out, `concurrency` at a time (one by
 * default; the others wait in state 'queued'). A job is handed to a
 * JobTrainer, whose callbacks become job events; on success the adapter is
 * stored as a new version and published at once. In the threaded engine the
 * trainer is fine-tune-thread.ts, which trains each job in a worker thread
 * of its own and hands the adapter over through the store on disk; with
 * `threads: false` it trains on this thread (job-training.ts), awaiting
 * one readback per step and yielding to the event loop between steps.
 *
 * Jobs survive restarts: a running job saves its trainer checkpoint every
 * so often and when the server drains (job-training.ts), and a job that was
 * running when the process stopped, whether drained or killed, runs first
 * after the restart, resuming from its checkpoint (from step 0 if it has
 * none; failed, saying why, if its inputs are gone).
 */
import type { Logger } from 'pino';
import { Cancelled, clientMessage, FailedPrecondition, ResourceExhausted, Unavailable } from '../common/errors.js';
import type { GptModel } from '../model/gpt-model.js';
import { resolveHyperparameters } from '../training/train-hyperparameters.js';
import type { AdapterRegistry } from './adapter-registry.js';
import type { LimitsConfig } from './config.js';
import type { DatasetStore } from './dataset-store.js';
import { type EngineMetrics, noMetrics } from './engine-metrics.js';
import type { FineTuneSpec, JobInfo } from './engine-api.js';
import { isFinished } from './job-state.js';
import type { JobStore } from './job-store.js';
import { limitLabel } from './limit-label.js';
import { DEFAULT_CHECKPOINT_INTERVAL_MS, inProcessTrainer, type JobTrainer, trainHyperparameters, trainMethod } from './job-training.js';

export { trainMethod } from './job-training.js';

/**
 * Least time a draining runner gives its running jobs to reach a step
 * boundary and write their checkpoint, in milliseconds, even when the calls
 * in flight (a client watching the job, say) used up the grace period
 * before the engine was drained. Kubernetes' default 30 s termination grace
 * leaves room for it after the server's default 10 s.
 */
export const MIN_CHECKPOINT_WAIT_MS = 10_000;

interface RunningJob {
  id: string;
  controller: AbortController;
  /** Aborted by drain: checkpoint at the next step boundary, then stop. */
  suspender: AbortController;
  done: Promise<void>;
}

/** How jobs run. */
export interface RunnerOptions {
  /** Trains one job; default: on this thread, over the serving model's weights. */
  trainer?: JobTrainer;
  /** Jobs trained at once (default 1). */
  concurrency?: number;
}

/** The FIFO of fine-tune jobs and the ones that run. */
export class FineTuneRunner {
  private readonly queue: string[] = [];
  /** submit() calls between their checks and their queue.push (the job store is writing them). */
  private submitting = 0;
  private readonly running = new Map<string, RunningJob>();
  private readonly trainer: JobTrainer;
  private readonly concurrency: number;
  private draining = false;

  constructor(
    private readonly model: GptModel,
    private readonly jobs: JobStore,
    private readonly datasets: DatasetStore,
    private readonly registry: AdapterRegistry,
    private readonly limits: LimitsConfig,
    private readonly log: Logger,
    private readonly metrics: EngineMetrics = noMetrics,
    options: RunnerOptions = {},
  ) {
    this.trainer = options.trainer ?? inProcessTrainer(model, datasets, { checkpointIntervalMs: DEFAULT_CHECKPOINT_INTERVAL_MS, log });
    this.concurrency = Math.max(1, options.concurrency ?? 1);
  }

  /**
   * Queues the jobs an earlier process left: those it was running first (they
   * resume from their checkpoints), then those it had queued, oldest first;
   * and starts the first.
   */
  start(): void {
    for (const job of this.jobs.interrupted()) {
      this.log.info({ jobId: job.id, adapter: job.spec.adapter }, 'fine-tune job interrupted by a restart: resuming it');
      this.queue.push(job.id);
    }
    for (const job of this.jobs.queued()) this.queue.push(job.id);
    this.pump();
  }

  /** Checks what only the engine knows, persists the job and queues it. */
  async submit(spec: FineTuneSpec): Promise<JobInfo> {
    if (this.draining) throw new Unavailable('the server is shutting down');
    this.check(spec);
    this.checkQueuedJobs();
    this.submitting++;
    // Jobs ahead of it: those queued, and the running ones it waits for.
    const job = await this.jobs.create(spec, this.queue.length + Math.max(0, this.running.size - this.concurrency + 1)).finally(() => this.submitting--);
    this.queue.push(job.id);
    this.log.info({ jobId: job.id, adapter: spec.adapter }, 'fine-tune job queued');
    this.pump();
    return job;
  }

  /** Cancels a queued or running job; resolves once it is cancelled. */
  async cancel(jobId: string): Promise<JobInfo> {
    const job = this.jobs.get(jobId);
    if (isFinished(job)) throw new FailedPrecondition(`fine-tune job ${JSON.stringify(jobId)} already ${job.state}`);
    const at = this.queue.indexOf(jobId);
    const running = this.running.get(jobId);
    if (at >= 0) {
      this.queue.splice(at, 1);
      await this.jobs.append(jobId, { type: 'cancelled' });
    } else if (running) {
      running.controller.abort(new Cancelled('the fine-tune job was cancelled'));
      await running.done;
    }
    return this.jobs.get(jobId);
  }

  /** A queued or running job that reads the dataset, if any. */
  jobUsingDataset(datasetId: string): string | undefined {
    return this.jobs
      .unfinished()
      .find((j) => ('datasetId' in j.spec.training && j.spec.training.datasetId === datasetId) || j.spec.validationDatasetId === datasetId)?.id;
  }

  /**
   * Starts no more jobs; has the running ones save a checkpoint at their next
   * step boundary and stop, without a terminal event, so that they resume
   * after the restart. One still stepping after `graceMs` (at least
   * {@link MIN_CHECKPOINT_WAIT_MS}) is stopped at once (it resumes from its
   * previous checkpoint). Queued jobs stay queued on disk and run after the restart.
   */
  async drain(graceMs: number): Promise<void> {
    this.draining = true;
    const running = [...this.running.values()];
    if (running.length === 0) return;
    for (const r of running) r.suspender.abort();
    const all = Promise.all(running.map((r) => r.done));
    let timer: NodeJS.Timeout | undefined;
    const wait = Math.max(graceMs, MIN_CHECKPOINT_WAIT_MS);
    await Promise.race([all, new Promise<void>((resolve) => (timer = setTimeout(resolve, wait)))]);
    clearTimeout(timer);
    for (const r of running) r.controller.abort(new Unavailable('the server is shutting down'));
    await all;
  }

  private pump(): void {
    while (this.running.size < this.concurrency && !this.draining) {
      const id = this.queue.shift();
      if (id === undefined) return;
      const controller = new AbortController();
      const suspender = new AbortController();
      const job: RunningJob = { id, controller, suspender, done: Promise.resolve() };
      job.done = this.run(id, controller.signal, suspender.signal)
        .catch((err: unknown) => this.log.error({ jobId: id, err }, 'fine-tune job bookkeeping failed'))
        .finally(() => {
          this.running.delete(id);
          this.pump();
        });
      this.running.set(id, job);
    }
  }

  private async run(jobId: string, signal: AbortSignal, suspend: AbortSignal): Promise<void> {
    const spec = this.jobs.get(jobId).spec;
    const log = this.log.child({ jobId });
    log.info({ adapter: spec.adapter }, 'fine-tune job starting');
    try {
      // Checked at submit, but a restart may find a dataset gone (unreadable, skipped): fail naming it.
      if ('datasetId' in spec.training) this.datasets.get(spec.training.datasetId, 'dataset_id');
      if (spec.validationDatasetId !== undefined) this.datasets.get(spec.validationDatasetId, 'validation_dataset_id');
      const job = { id: jobId, spec, checkpointPath: this.jobs.checkpointPath(jobId) };
      const result = await this.trainer(job, {
        onStart: async (e) => {
          this.metrics.onJobStarted(jobId, spec.adapter, e.totalSteps);
          await this.jobs.append(jobId, {
            type: 'started',
            totalSteps: e.totalSteps,
            numTrainExamples: e.trainSequences,
            numValidationExamples: e.validationSequences,
            trainableParameters: e.trainableParameters,
            ...(e.startStep > 0 ? { resumedFromStep: e.startStep } : {}),
          });
        },
        onProgress: async (e) => {
          this.metrics.onJobProgress(jobId, e);
          await this.jobs.append(jobId, { type: 'progress', ...e });
        },
        onEvaluation: async (e) => {
          this.metrics.onJobEvaluation(jobId, e.loss);
          await this.jobs.append(jobId, { type: 'evaluation', step: e.step, evalLoss: e.loss, perplexity: e.perplexity });
        },
        onCheckpoint: async (e) => {
          await this.jobs.append(jobId, { type: 'checkpoint', step: e.step });
        },
      }, { signal, suspend });
      if (result.status === 'cancelled') {
        await this.ended(jobId, signal, log);
        return;
      }
      if (result.status === 'suspended') {
        log.info({ step: result.step }, 'fine-tune job checkpointed for shutdown: it resumes after the restart');
        return;
      }
      // Trained here: stored and published now. Trained in a worker: stored there, published already.
      const version = 'adapter' in result ? (await this.registry.publish(spec.adapter, result.adapter, jobId)).version : result.storedVersion;
      await this.jobs.append(jobId, {
        type: 'succeeded',
        adapter: spec.adapter,
        version,
        metrics: {
          trainLoss: result.trainLoss ?? Number.NaN,
          evalLoss: result.evaluation?.loss,
          perplexity: result.evaluation?.perplexity,
          steps: result.steps,
          tokens: result.lossTokens,
          trainSeconds: result.trainSeconds,
        },
      });
      log.info({ adapter: `${spec.adapter}@${version}`, steps: result.steps, trainSeconds: result.trainSeconds }, 'fine-tune job succeeded');
    } catch (err) {
      if (signal.aborted) {
        await this.ended(jobId, signal, log);
        return;
      }
      // What a client may read of it (errors.ts's rule, the gRPC status's too); the whole error goes to the log.
      const reason = clientMessage(err);
      log.error({ err }, 'fine-tune job failed');
      await this.jobs.append(jobId, { type: 'failed', reason });
    }
  }

  /** A stopped run: cancelled by the user, or cut by shutdown (then no terminal event). */
  private async ended(jobId: string, signal: AbortSignal, log: Logger): Promise<void> {
    if (signal.reason instanceof Cancelled) {
      await this.jobs.append(jobId, { type: 'cancelled' });
      log.info('fine-tune job cancelled');
    } else {
      log.warn('fine-tune job stopped by shutdown');
    }
  }

  /**
   * A new job must not make more than limits.maxQueuedJobs jobs wait for a
   * training slot (running jobs, and one about to start in a free slot, do not count).
   */
  private checkQueuedJobs(): void {
    const waiting = this.queue.length + this.submitting + this.running.size - this.concurrency;
    if (waiting >= this.limits.maxQueuedJobs) {
      throw new ResourceExhausted(`the fine-tune queue is full: at most ${limitLabel('maxQueuedJobs', this.limits.maxQueuedJobs)} jobs wait for a training slot`);
    }
  }

  /**
   * What the request's validation (src/server/fine-tune-codec.ts, where the
   * field ranges are checked, the served model's included: num_layers,
   * max_seq_len, batch_size) cannot check: the base model's name, the stored
   * datasets, target_modules against the served model's family, and the
   * hyperparameters taken together.
   */
  private check(spec: FineTuneSpec): void {
    const { config, name } = this.model;
    if (spec.baseModel !== '' && spec.baseModel !== name) {
      throw new FailedPrecondition(`\`base_model\` ${JSON.stringify(spec.baseModel)} is not the served model ${JSON.stringify(name)}`);
    }
    if ('datasetId' in spec.training) this.datasets.get(spec.training.datasetId, 'dataset_id');
    if (spec.validationDatasetId !== undefined) this.datasets.get(spec.validationDatasetId, 'validation_dataset_id');
    const h = spec.hyperparameters;
    const hasValidation = spec.validationDatasetId !== undefined || (h.validationSplit ?? 0) > 0;
    // Fails now, naming the field, rather than when the job starts.
    resolveHyperparameters(trainHyperparameters(h), trainMethod(spec.method, config), hasValidation);
  }
}
