/**
 * A fine-tune job's state is a fold over its event log: nothing but the log
 * is persisted, so state after a restart is exactly what the log says.
 */
import type { FineTuneSpec, JobEvent, JobInfo } from './engine-api.js';

/** Events after which a job never changes again. */
export function isTerminalEvent(event: JobEvent): boolean {
  return event.type === 'succeeded' || event.type === 'failed' || event.type === 'cancelled';
}

/** The state of a job that has only been created. */
export function initialJobInfo(id: string, spec: FineTuneSpec, createdAtMs: number): JobInfo {
  return { id, state: 'queued', spec, createdAtMs, step: 0, totalSteps: 0 };
}

/** Applies one event to a job's state, in place. */
export function applyJobEvent(job: JobInfo, event: JobEvent): void {
  switch (event.type) {
    case 'queued':
      job.state = 'queued';
      break;
    case 'started':
      job.state = 'running';
      job.startedAtMs ??= event.timeMs;
      job.totalSteps = event.totalSteps;
      // A resumed run goes on from its checkpoint, which may be behind the last progress logged.
      job.step = event.resumedFromStep ?? 0;
      break;
    case 'progress':
      job.step = event.step;
      job.totalSteps = event.totalSteps;
      job.loss = event.loss;
      break;
    case 'evaluation':
    case 'checkpoint':
      break;
    case 'succeeded':
      job.state = 'succeeded';
      job.finishedAtMs = event.timeMs;
      job.adapterVersion = event.version;
      job.metrics = event.metrics;
      job.step = event.metrics.steps;
      break;
    case 'failed':
      job.state = 'failed';
      job.finishedAtMs = event.timeMs;
      job.error = event.reason;
      break;
    case 'cancelled':
      job.state = 'cancelled';
      job.finishedAtMs = event.timeMs;
      break;
  }
}

/** True when the job has reached succeeded, failed or cancelled. */
export function isFinished(job: JobInfo): boolean {
  return job.state === 'succeeded' || job.state === 'failed' || job.state === 'cancelled';
}
