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
 *
 * Replicas sharing the data directory share the jobs: whichever replica
 * takes a job's lease (job-lease.ts) runs it, and only that one appends to
 * its log; one whose holder dies is taken over when the lease expires. The
 * runner looks for jobs to take when one is submitted here, when one of its
 * own ends, and every `pollMs` (jobs submitted on other replicas). A job
 * whose adapter is already stored (its holder died after storing it, before
 * logging `succeeded`) is not trained again: it succeeds with that version,
 * so a job publishes at most one version. A replica whose role is `serve`
 * (`runsJobs: false`) takes no jobs; it still accepts, lists and cancels them.
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { diskError, isDiskFull } from '../common/atomic-write.js';
import { Cancelled, clientMessage, FailedPrecondition, ResourceExhausted, Unavailable } from '../common/errors.js';
import type { GptModel } from '../model/gpt-model.js';
import { resolveHyperparameters } from '../training/train-hyperparameters.js';
import type { AdapterRegistry } from './adapter-registry.js';
import type { LimitsConfig } from './config.js';
import type { DatasetStore } from './dataset-store.js';
import { type EngineMetrics, noMetrics } from './engine-metrics.js';
import type { FinalMetrics, FineTuneSpec, JobEventBody, JobInfo } from './engine-api.js';
import { DEFAULT_LEASE_RENEW_MS, DEFAULT_LEASE_TTL_MS, JobLease, type LeaseTiming, leaseIsFree, newHolderId } from './job-lease.js';
import { isFinished, isTerminalEvent } from './job-state.js';
import type { JobStore } from './job-store.js';
import { limitLabel } from './limit-label.js';
import { DEFAULT_CHECKPOINT_INTERVAL_MS, finalMetrics, inProcessTrainer, type JobTrainer, type PublishAdapter, trainHyperparameters, trainMethod } from './job-training.js';

export { trainMethod } from './job-training.js';

/**
 * Least time a draining runner gives its running jobs to reach a step
 * boundary and write their checkpoint, in milliseconds, even when the calls
 * in flight (a client watching the job, say) used up the grace period
 * before the engine was drained. Kubernetes' default 30 s termination grace
 * leaves room for it after the server's default 10 s.
 */
export const MIN_CHECKPOINT_WAIT_MS = 10_000;

/** A file in a job's folder asking its holder (on whichever replica) to cancel it. */
const CANCEL_REQUEST_FILE = 'cancel-requested';

/** Default period of the look for jobs submitted elsewhere (and of the store refresh), in milliseconds. */
export const DEFAULT_POLL_MS = 250;

interface RunningJob {
  id: string;
  lease: JobLease;
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
  /** Take and run jobs (default true); false for a serving-only replica (`--role serve`). */
  runsJobs?: boolean;
  /** Lease lifetime and renewal period (default 10 s and 2 s). */
  lease?: LeaseTiming;
  /** Period of the look for jobs to run and of the job store's refresh, in milliseconds (default 250; 0 = never). */
  pollMs?: number;
  /** This replica's lease holder id (default: a fresh one). */
  holder?: string;
  /** Called at every poll, after the job store's refresh (the engine refreshes its other stores there). */
  onPoll?: () => void;
}

/** The FIFO of fine-tune jobs and the ones that run. */
export class FineTuneRunner {
  /** submit() calls between their checks and the job being written. */
  private submitting = 0;
  private readonly running = new Map<string, RunningJob>();
  private readonly trainer: JobTrainer;
  private readonly concurrency: number;
  private readonly runsJobs: boolean;
  private readonly leaseTiming: LeaseTiming;
  private readonly pollMs: number;
  /** This replica's id in the leases it takes. */
  readonly holder: string;
  private draining = false;
  /** One look for jobs at a time; `again` asks for another once it is done. */
  private pumping: Promise<void> | null = null;
  private again = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly onPoll: () => void;

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
    this.trainer = options.trainer ?? inProcessTrainer(model, datasets, { checkpointIntervalMs: DEFAULT_CHECKPOINT_INTERVAL_MS, log, publish: publishWith(registry) });
    this.concurrency = Math.max(1, options.concurrency ?? 1);
    this.runsJobs = options.runsJobs ?? true;
    this.leaseTiming = options.lease ?? { ttlMs: DEFAULT_LEASE_TTL_MS, renewMs: DEFAULT_LEASE_RENEW_MS };
    this.pollMs = options.pollMs ?? DEFAULT_POLL_MS;
    this.holder = options.holder ?? newHolderId();
    this.onPoll = options.onPoll ?? (() => undefined);
  }

  /**
   * Starts looking for jobs to run: those left running by a process that
   * stopped (resumed from their checkpoints) first, then queued ones, oldest
   * first; and every `pollMs` from then on, refreshing the job store.
   */
  start(): void {
    if (this.pollMs > 0) {
      this.timer = setInterval(() => this.tick(), this.pollMs);
      this.timer.unref();
    }
    this.pump();
  }

  /** One poll: catch up with the store, pass on cancel requests to jobs running here, look for jobs. */
  private tick(): void {
    this.jobs.refresh();
    this.onPoll();
    for (const r of this.running.values()) {
      if (!r.controller.signal.aborted && existsSync(join(this.jobs.jobDir(r.id), CANCEL_REQUEST_FILE))) {
        r.controller.abort(new Cancelled('the fine-tune job was cancelled'));
      }
    }
    this.pump();
  }

  /** Checks what only the engine knows, persists the job and queues it. */
  async submit(spec: FineTuneSpec): Promise<JobInfo> {
    if (this.draining) throw new Unavailable('the server is shutting down');
    this.check(spec);
    this.checkQueuedJobs();
    this.submitting++;
    // Jobs ahead of it: those queued, and the running ones it waits for.
    const ahead = this.jobs.queued().length + Math.max(0, this.running.size - this.concurrency + 1);
    const job = await this.jobs.create(spec, ahead).finally(() => this.submitting--);
    this.log.info({ jobId: job.id, adapter: spec.adapter }, 'fine-tune job queued');
    this.pump();
    return job;
  }

  /**
   * Cancels a queued or running job; resolves once it is cancelled. A job
   * running here stops at its next step boundary. One nobody holds is
   * cancelled under its lease, taken for the purpose. One held by another
   * replica gets a cancel request in its folder, which its holder (or, if
   * that dies, the next one) acts on at its next poll; this waits for it.
   */
  async cancel(jobId: string): Promise<JobInfo> {
    const job = this.jobs.get(jobId);
    if (isFinished(job)) throw new FailedPrecondition(`fine-tune job ${JSON.stringify(jobId)} already ${job.state}`);
    const running = this.running.get(jobId);
    if (running) {
      running.controller.abort(new Cancelled('the fine-tune job was cancelled'));
      await running.done;
      return this.jobs.get(jobId);
    }
    const lease = await JobLease.acquire(this.jobs.jobDir(jobId), this.holder, this.leaseTiming, () => undefined);
    if (lease) {
      try {
        const adopted = await this.jobs.adopt(jobId);
        if (!isFinished(adopted)) await this.jobs.append(jobId, { type: 'cancelled' });
      } finally {
        await this.jobs.disown(jobId);
        await lease.release(isFinished(this.jobs.get(jobId)));
      }
      return this.jobs.get(jobId);
    }
    await writeFile(join(this.jobs.jobDir(jobId), CANCEL_REQUEST_FILE), `${this.holder}\n`);
    const stop = new AbortController();
    for await (const e of this.jobs.watch(jobId, 0, stop.signal)) {
      if (isTerminalEvent(e)) break;
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
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.pumping;
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

  /** Looks for jobs to take (one look at a time; a call during a look asks for one more). */
  private pump(): void {
    if (!this.runsJobs || this.draining) return;
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = this.takeJobs()
      .catch((err: unknown) => this.log.error({ err }, 'looking for fine-tune jobs failed'))
      .finally(() => {
        this.pumping = null;
        if (this.again) {
          this.again = false;
          this.pump();
        }
      });
  }

  /** Takes the leases of free jobs, running ones (left by a dead holder) first, then queued ones, oldest first, while slots are free. */
  private async takeJobs(): Promise<void> {
    const candidates = [...this.jobs.interrupted(), ...this.jobs.queued()];
    for (const job of candidates) {
      if (this.running.size >= this.concurrency || this.draining) return;
      if (this.running.has(job.id)) continue;
      const dir = this.jobs.jobDir(job.id);
      if (!leaseIsFree(dir)) continue;
      const controller = new AbortController();
      const suspender = new AbortController();
      let lease: JobLease | undefined;
      try {
        lease = await JobLease.acquire(dir, this.holder, this.leaseTiming, () => {
          this.log.warn({ jobId: job.id }, 'lost the lease of a fine-tune job: stopping it (another replica takes it over)');
          controller.abort(new Unavailable('the lease of the fine-tune job was lost'));
        });
      } catch (err) {
        if (!isDiskFull(err)) throw err;
        // No lease can be written on a full disk, so no replica can run the job: fail it, saying why,
        // rather than leave it (and its client) waiting. The failed event usually still fits in the
        // log's last page; every replica that sees this writes the same reason.
        const reason = clientMessage(diskError(err, dirname(this.jobs.dir)));
        this.log.error({ jobId: job.id, err }, 'fine-tune job failed: no lease can be written');
        await this.jobs.append(job.id, { type: 'failed', reason }).catch((e: unknown) => this.log.error({ jobId: job.id, err: e }, 'could not log the failure'));
        continue;
      }
      if (!lease) continue;
      // Taken over from a holder that stopped renewing: an append it checked just before its lease ran out
      // may still be on its way to the file; one renewal period more and it has landed (or never will).
      if (lease.tookOver) await new Promise((resolve) => setTimeout(resolve, this.leaseTiming.renewMs));
      if (this.draining) {
        await lease.release();
        return;
      }
      const running: RunningJob = { id: job.id, lease, controller, suspender, done: Promise.resolve() };
      running.done = this.run(job.id, lease, controller.signal, suspender.signal)
        .catch((err: unknown) => this.log.error({ jobId: job.id, err }, 'fine-tune job bookkeeping failed'))
        .finally(async () => {
          await this.jobs.disown(job.id).catch(() => undefined);
          await lease.release(isFinished(this.jobs.get(job.id))).catch(() => undefined);
          this.running.delete(job.id);
          this.pump();
        });
      this.running.set(job.id, running);
    }
  }

  private async run(jobId: string, lease: JobLease, signal: AbortSignal, suspend: AbortSignal): Promise<void> {
    const log = this.log.child({ jobId, holder: this.holder });
    // The previous holder may have written more than this replica has read: read the log again, now that nobody else writes it.
    const adopted = await this.jobs.adopt(jobId);
    const spec = adopted.spec;
    if (isFinished(adopted)) return;
    /** Appends only while the lease is ours: a holder that lost it writes nothing more. */
    const append = async (body: JobEventBody) => {
      if (!lease.valid) throw signal.aborted ? signal.reason : new Unavailable('the lease of the fine-tune job was lost');
      return this.jobs.append(jobId, body, () => lease.valid);
    };
    if (existsSync(join(this.jobs.jobDir(jobId), CANCEL_REQUEST_FILE))) {
      await append({ type: 'cancelled' });
      log.info('fine-tune job cancelled (requested on another replica)');
      return;
    }
    if (await this.jobs.failIfLooping(jobId)) return;
    log.info({ adapter: spec.adapter, resume: adopted.state === 'running' }, 'fine-tune job starting');
    try {
      // Stored already (a holder died between storing it and logging `succeeded`): publish nothing new.
      const stored = await this.registry.storedByJob(spec.adapter, jobId);
      if (stored) {
        await append({ type: 'succeeded', adapter: spec.adapter, version: stored.version, metrics: stored.jobMetrics ?? lastMetrics(adopted) });
        log.info({ adapter: `${spec.adapter}@${stored.version}` }, 'fine-tune job succeeded (its adapter was stored before the restart)');
        return;
      }
      // Checked at submit, but a restart may find a dataset gone (unreadable, skipped): fail naming it.
      if ('datasetId' in spec.training) this.datasets.get(spec.training.datasetId, 'dataset_id');
      if (spec.validationDatasetId !== undefined) this.datasets.get(spec.validationDatasetId, 'validation_dataset_id');
      const job = { id: jobId, spec, checkpointPath: this.jobs.checkpointPath(jobId), lease: lease.ref };
      const result = await this.trainer(job, {
        onStart: async (e) => {
          this.metrics.onJobStarted(jobId, spec.adapter, e.totalSteps);
          await append({
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
          await append({ type: 'progress', ...e });
        },
        onEvaluation: async (e) => {
          this.metrics.onJobEvaluation(jobId, e.loss);
          await append({ type: 'evaluation', step: e.step, evalLoss: e.loss, perplexity: e.perplexity });
        },
        onCheckpoint: async (e) => {
          await append({ type: 'checkpoint', step: e.step });
        },
      }, { signal, suspend, mayPublish: () => lease.valid });
      if (result.status === 'cancelled') {
        await this.ended(jobId, signal, log, append);
        return;
      }
      if (result.status === 'suspended') {
        log.info({ step: result.step }, 'fine-tune job checkpointed for shutdown: it resumes after the restart');
        return;
      }
      const metrics = finalMetrics(result);
      const version = result.storedVersion;
      await append({ type: 'succeeded', adapter: spec.adapter, version, metrics });
      log.info({ adapter: `${spec.adapter}@${version}`, steps: result.steps, trainSeconds: result.trainSeconds }, 'fine-tune job succeeded');
    } catch (err) {
      if (signal.aborted) {
        await this.ended(jobId, signal, log, append);
        return;
      }
      // What a client may read of it (errors.ts's rule, the gRPC status's too); the whole error goes to the log.
      const reason = clientMessage(err);
      log.error({ err }, 'fine-tune job failed');
      await append({ type: 'failed', reason });
    }
  }

  /** A stopped run: cancelled by the user, or cut by shutdown or a lost lease (then no terminal event). */
  private async ended(jobId: string, signal: AbortSignal, log: Logger, append: (body: JobEventBody) => Promise<unknown>): Promise<void> {
    if (signal.reason instanceof Cancelled) {
      await append({ type: 'cancelled' });
      log.info('fine-tune job cancelled');
    } else {
      log.warn({ reason: signal.reason instanceof Error ? signal.reason.message : String(signal.reason) }, 'fine-tune job stopped without ending (shutdown, or its lease was lost)');
    }
  }

  /**
   * A new job must not make more than limits.maxQueuedJobs jobs wait for a
   * training slot (running jobs, and one about to start in a free slot, do not count).
   */
  private checkQueuedJobs(): void {
    const freeSlots = this.runsJobs ? Math.max(0, this.concurrency - this.running.size) : 0;
    const waiting = this.jobs.queued().length + this.submitting - freeSlots;
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

/** Final metrics from a job's state, for a version stored without them (an older gentune.json). */
function lastMetrics(job: JobInfo): FinalMetrics {
  return { trainLoss: job.loss ?? Number.NaN, steps: job.step, tokens: 0, trainSeconds: 0 };
}

/** The in-process trainer's publishing: the registry stores the version and makes it resident, as a worker's version is adopted. */
export function publishWith(registry: AdapterRegistry): PublishAdapter {
  return async (name, adapter, jobId, metrics, mayPublish) => (await registry.publish(name, adapter, jobId, metrics, mayPublish)).version;
}
