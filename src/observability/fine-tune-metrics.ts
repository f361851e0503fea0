/**
 * Fine-tuning metrics: jobs per state (from the job store, at scrape time)
 * and the progress of the running job. The progress gauges carry the job's id
 * and adapter; they are cleared when the next job starts, so they show the
 * running job, or the last one after it ended. `last_step_timestamp_seconds`
 * is set when the job starts and after every step: `time() - it` growing while
 * a job runs is a stuck trainer.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { JobState } from '../engine/engine-api.js';
import type { JobProgress } from '../engine/engine-metrics.js';

const STATES: readonly JobState[] = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];

type JobLabels = 'job_id' | 'adapter';

export class FineTuneMetrics {
  private readonly step: Gauge<JobLabels>;
  private readonly totalSteps: Gauge<JobLabels>;
  private readonly trainLoss: Gauge<JobLabels>;
  private readonly evalLoss: Gauge<JobLabels>;
  private readonly learningRate: Gauge<JobLabels>;
  private readonly gradNorm: Gauge<JobLabels>;
  private readonly tokensPerSecond: Gauge<JobLabels>;
  private readonly lastStep: Gauge<JobLabels>;
  private readonly steps: Counter;
  private readonly progressGauges: Gauge<JobLabels>[];
  /** Labels of the job that started last. */
  private current: { job_id: string; adapter: string } | undefined;
  private jobCounts: () => Partial<Record<JobState, number>> = () => ({});

  constructor(registry: Registry, prefix: string) {
    const registers = [registry];
    const p = `${prefix}finetune_`;
    const labelNames: JobLabels[] = ['job_id', 'adapter'];
    const jobs: Gauge<'state'> = new Gauge({
      name: `${p}jobs`,
      help: 'Fine-tune jobs in the job store, by state.',
      labelNames: ['state'],
      registers,
      collect: () => {
        const counts = this.jobCounts();
        for (const state of STATES) jobs.set({ state }, counts[state] ?? 0);
      },
    });
    this.step = new Gauge({ name: `${p}step`, help: 'Optimizer steps done by the running (else the last) job.', labelNames, registers });
    this.totalSteps = new Gauge({ name: `${p}total_steps`, help: 'Optimizer steps the running (else the last) job will take.', labelNames, registers });
    this.trainLoss = new Gauge({ name: `${p}train_loss`, help: 'Training loss of the latest step, nats per loss token.', labelNames, registers });
    this.evalLoss = new Gauge({ name: `${p}eval_loss`, help: 'Validation loss of the latest evaluation, nats per loss token.', labelNames, registers });
    this.learningRate = new Gauge({ name: `${p}learning_rate`, help: 'Learning rate of the latest step.', labelNames, registers });
    this.gradNorm = new Gauge({ name: `${p}grad_norm`, help: 'Global gradient norm of the latest step, before clipping.', labelNames, registers });
    this.tokensPerSecond = new Gauge({ name: `${p}throughput_tokens_per_second`, help: 'Training throughput over the latest steps, input tokens per second.', labelNames, registers });
    this.lastStep = new Gauge({ name: `${p}last_step_timestamp_seconds`, help: 'Unix time of the latest step of the running (else the last) job, or of its start.', labelNames, registers });
    this.steps = new Counter({ name: `${p}steps_total`, help: 'Optimizer steps done, all jobs together.', registers });
    this.progressGauges = [this.step, this.totalSteps, this.trainLoss, this.evalLoss, this.learningRate, this.gradNorm, this.tokensPerSecond, this.lastStep];
  }

  /** Reads job counts from the job store at scrape time. */
  bind(jobCounts: () => Partial<Record<JobState, number>>): void {
    this.jobCounts = jobCounts;
  }

  started(jobId: string, adapter: string, totalSteps: number): void {
    for (const g of this.progressGauges) g.reset();
    const labels = { job_id: jobId, adapter };
    this.current = labels;
    this.step.set(labels, 0);
    this.totalSteps.set(labels, totalSteps);
    this.lastStep.set(labels, Date.now() / 1000);
  }

  progress(jobId: string, p: JobProgress): void {
    const labels = this.labels(jobId);
    this.step.set(labels, p.step);
    this.totalSteps.set(labels, p.totalSteps);
    this.trainLoss.set(labels, p.loss);
    this.learningRate.set(labels, p.learningRate);
    this.gradNorm.set(labels, p.gradNorm);
    this.tokensPerSecond.set(labels, p.tokensPerSecond);
    this.lastStep.set(labels, Date.now() / 1000);
    this.steps.inc();
  }

  evaluation(jobId: string, evalLoss: number): void {
    this.evalLoss.set(this.labels(jobId), evalLoss);
  }

  private labels(jobId: string): { job_id: string; adapter: string } {
    return this.current?.job_id === jobId ? this.current : { job_id: jobId, adapter: '' };
  }
}
