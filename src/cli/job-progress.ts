/**
 * Renders a fine-tune event stream: a progress bar on stderr (live-bar.ts) (step, loss,
 * learning rate, ETA from the server) when stderr is a terminal, one line per
 * event otherwise, JSON lines with --json. Returns the process exit code:
 * 0 when the job succeeded, 1 when it failed or was cancelled.
 */
import { FineTuneEvent } from '../gen/gentune/v1/fine_tune.js';
import { LiveBar } from './live-bar.js';
import { fmt, printProto } from './output.js';

/** "1h02m", "3m05s", "42s". */
export function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '-';
  const s = Math.round(seconds);
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${s}s`;
}

/** One human-readable line for an event. */
export function describeEvent(e: FineTuneEvent): string {
  const ev = e.event;
  switch (ev?.$case) {
    case 'queued':
      return `job ${e.jobId} queued (${ev.value.position} ahead)`;
    case 'started':
      return `${ev.value.resumedFromStep === undefined ? 'started' : `resumed from step ${ev.value.resumedFromStep}`}: ${ev.value.totalSteps} steps, ${ev.value.numTrainExamples} train / ${ev.value.numValidationExamples} validation examples, ${ev.value.trainableParameters} trainable parameters`;
    case 'progress': {
      const p = ev.value;
      return `step ${p.step}/${p.totalSteps} epoch ${fmt(p.epoch)} loss ${fmt(p.loss)} lr ${p.learningRate.toExponential(2)} grad_norm ${fmt(p.gradNorm)} ${fmt(p.tokensPerSecond)} tok/s eta ${formatEta(p.etaSeconds)}`;
    }
    case 'evaluation':
      return `eval at step ${ev.value.step}: loss ${fmt(ev.value.evalLoss)} perplexity ${fmt(ev.value.perplexity)}`;
    case 'checkpoint':
      return `checkpoint at step ${ev.value.step}`;
    case 'succeeded': {
      const m = ev.value.metrics;
      const evalPart = m?.evalLoss === undefined ? '' : `, eval loss ${fmt(m.evalLoss)}`;
      return `succeeded: adapter ${ev.value.adapter}@${ev.value.version} (train loss ${fmt(m?.trainLoss)}${evalPart}, ${m?.steps ?? 0} steps, ${fmt(m?.trainSeconds)} s)`;
    }
    case 'failed':
      return `failed: ${ev.value.reason}`;
    case 'cancelled':
      return 'cancelled';
    default:
      return `event ${e.sequence}`;
  }
}

/**
 * Ctrl-C does not stop a job (it runs on the server): say so, and how to
 * follow or cancel it, then exit 130 as a shell expects after SIGINT.
 * Returns the function that removes the handler.
 */
function announceJobOnInterrupt(jobId: string, stopBar: () => void): () => void {
  const onInterrupt = () => {
    stopBar();
    process.stderr.write(
      `\njob ${jobId} is still running on the server\n  follow it: gentune jobs watch ${jobId}\n  cancel it: gentune jobs cancel ${jobId}\n`,
    );
    process.exit(130);
  };
  process.once('SIGINT', onInterrupt);
  return () => process.off('SIGINT', onInterrupt);
}

/**
 * Follows `events` to the end (or, with `detach`, to the first event). With
 * `announceOnInterrupt`, SIGINT prints the job id and the commands to watch or
 * cancel it and exits 130.
 */
export async function renderJobEvents(
  events: AsyncIterable<FineTuneEvent>,
  options: { json?: boolean; detach?: boolean; announceOnInterrupt?: boolean },
): Promise<number> {
  const tty = process.stderr.isTTY === true && !options.json;
  // Event lines go above the bar (stdout), the bar stays the last line (stderr) until the job ends.
  const bar = tty ? new LiveBar() : undefined;
  const line = (text: string) => (bar ? bar.log(text) : process.stdout.write(`${text}\n`));
  let last: FineTuneEvent | undefined;
  let removeInterruptHandler: (() => void) | undefined;
  try {
    for await (const e of events) {
      last = e;
      if (options.announceOnInterrupt && !removeInterruptHandler) removeInterruptHandler = announceJobOnInterrupt(e.jobId, () => bar?.stop());
      const ev = e.event;
      if (options.json) printProto(FineTuneEvent, 'gentune.v1.FineTuneEvent', e);
      else if (ev?.$case === 'progress' && bar) {
        const p = ev.value;
        bar.update(p.step, p.totalSteps, `step ${p.step}/${p.totalSteps} | loss ${fmt(p.loss)} | lr ${p.learningRate.toExponential(2)} | ETA ${formatEta(p.etaSeconds)}`);
      } else {
        line(describeEvent(e));
        // The end: the bar's final state is the last line.
        if (['succeeded', 'failed', 'cancelled'].includes(ev?.$case ?? '')) bar?.stop();
      }
      if (options.detach) {
        if (!options.json) line(`detached; follow with: gentune jobs watch ${e.jobId}`);
        return 0;
      }
    }
  } finally {
    removeInterruptHandler?.();
    bar?.stop();
  }
  return last?.event?.$case === 'succeeded' ? 0 : 1;
}
