/**
 * Follows an EvaluateStream: a bar on stderr per model and phase (live-bar.ts,
 * examples done of total) when stderr is a terminal, else a line on
 * stderr at each quarter of a phase, so stdout keeps only the table (or the
 * JSON). Resolves with the EvaluateResponse the stream ends with.
 */
import { type EvaluateEvent, EvaluatePhase, type EvaluateProgress, type EvaluateResponse } from '../gen/gentune/v1/evaluate.js';
import { LiveBar } from './live-bar.js';

const PHASE_NAMES: Record<number, string> = {
  [EvaluatePhase.EVALUATE_PHASE_LOSS]: 'loss',
  [EvaluatePhase.EVALUATE_PHASE_GENERATION]: 'generation',
};

/** "base (1/2) loss", "words@1 (2/2) generation": which model, which pass. */
export function describeProgress(p: EvaluateProgress): string {
  return `${p.adapter || 'base'} (${p.modelIndex + 1}/${p.numModels}) ${PHASE_NAMES[p.phase] ?? 'scoring'}`;
}

/** Where progress goes: `tty` draws bars, otherwise plain lines; `quiet` shows none (--json). */
export interface EvaluateProgressOptions {
  tty?: boolean;
  quiet?: boolean;
}

/**
 * Reads `events` to the end and returns the result it carries. Throws the
 * stream's error, or an Error when it ends without a result.
 */
export async function followEvaluation(events: AsyncIterable<EvaluateEvent>, options: EvaluateProgressOptions = {}): Promise<EvaluateResponse> {
  const tty = options.tty ?? process.stderr.isTTY === true;
  let bar: LiveBar | undefined;
  /** The model and phase the bar (or the lines) describe. */
  let current = '';
  let lastQuarter = 0;
  try {
    for await (const e of events) {
      const ev = e.event;
      if (ev?.$case === 'result') {
        bar?.stop();
        return ev.value;
      }
      if (ev?.$case !== 'progress' || options.quiet) continue;
      const p = ev.value;
      const label = describeProgress(p);
      if (tty) {
        if (label !== current) {
          // A finished bar stays on screen: one line per model and phase.
          bar?.stop();
          bar = new LiveBar();
        }
        bar!.update(p.examplesDone, p.examplesTotal, `${label} | ${p.examplesDone}/${p.examplesTotal} examples`);
      } else {
        if (label !== current) lastQuarter = 0;
        // Without a terminal, a line at each quarter: a long evaluation shows it is moving, a big one does not flood the log.
        const quarter = p.examplesTotal > 0 ? Math.floor((4 * p.examplesDone) / p.examplesTotal) : 4;
        if (quarter > lastQuarter) {
          lastQuarter = quarter;
          process.stderr.write(`${label}: ${p.examplesDone}/${p.examplesTotal} examples\n`);
        }
      }
      current = label;
    }
  } finally {
    bar?.stop();
  }
  throw new Error('the evaluation stream ended without a result');
}
