/**
 * Tokens per second over the last `window` steps: a moving window, so the
 * figure follows changes in batch shape instead of averaging the whole run.
 */
export class ThroughputMeter {
  private readonly steps: { tokens: number; seconds: number }[] = [];

  constructor(private readonly window: number) {}

  /** Records one step: tokens processed and seconds it took. */
  add(tokens: number, seconds: number): void {
    this.steps.push({ tokens, seconds });
    if (this.steps.length > this.window) this.steps.shift();
  }

  /** Tokens per second over the window; 0 before the first step. */
  tokensPerSecond(): number {
    let tokens = 0;
    let seconds = 0;
    for (const s of this.steps) {
      tokens += s.tokens;
      seconds += s.seconds;
    }
    return seconds > 0 ? tokens / seconds : 0;
  }
}
