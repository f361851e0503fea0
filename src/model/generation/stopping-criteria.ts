/** Why a sequence ended. */
export type FinishReason = 'length' | 'eos' | 'stop_sequence' | 'cancelled';

/**
 * Holds back streamed text that could still turn into a stop sequence, and
 * cuts the text at the first stop sequence found. Stops are matched on text,
 * not tokens, so a stop split across tokens is still caught.
 */
export class StopSequenceMatcher {
  private pending = '';
  private readonly longest: number;

  constructor(private readonly stops: readonly string[]) {
    this.longest = Math.max(0, ...stops.map((s) => s.length));
  }

  /** Feeds new text; returns the text that is safe to emit and whether a stop matched. */
  push(delta: string): { text: string; stopped: boolean } {
    if (this.stops.length === 0) return { text: delta, stopped: false };
    this.pending += delta;
    let cut = -1;
    for (const s of this.stops) {
      const at = this.pending.indexOf(s);
      if (at !== -1 && (cut === -1 || at < cut)) cut = at;
    }
    if (cut !== -1) {
      const text = this.pending.slice(0, cut);
      this.pending = '';
      return { text, stopped: true };
    }
    // Keep the longest tail that is a prefix of some stop sequence.
    let hold = 0;
    for (let n = Math.min(this.longest - 1, this.pending.length); n > 0; n--) {
      const tail = this.pending.slice(this.pending.length - n);
      if (this.stops.some((s) => s.startsWith(tail))) {
        hold = n;
        break;
      }
    }
    const text = this.pending.slice(0, this.pending.length - hold);
    this.pending = this.pending.slice(this.pending.length - hold);
    return { text, stopped: false };
  }

  /** Text held back when the sequence ends for another reason. */
  flush(): string {
    const text = this.pending;
    this.pending = '';
    return text;
  }
}
