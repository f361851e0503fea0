/**
 * A progress bar on the last line of a terminal with lines printed above it.
 * cli-progress's SingleBar restores the cursor it saved at start when it stops
 * (ESC 8), which lands on an older row once lines were printed below it (the
 * lines after it are overwritten, the shell prompt comes up mid-output), and it
 * turns autowrap off while it runs, which cuts long lines printed meanwhile.
 * Here every write is synchronous and in order: `log` clears the bar's row,
 * prints the line, redraws the bar; `stop` leaves the bar's last state on its
 * own line, ends it with a newline and shows the cursor. Nothing is drawn
 * later (no timers), so nothing lands after the command's last line.
 */
const WIDTH = 40;

export class LiveBar {
  private drawn = false;
  private text = '';

  /** @param stream the terminal the bar draws on (stderr). */
  constructor(private readonly stream: NodeJS.WriteStream = process.stderr) {}

  /** Draws `value` of `total` with `suffix` after the bar. */
  update(value: number, total: number, suffix: string): void {
    const fraction = total > 0 ? Math.min(1, Math.max(0, value / total)) : 0;
    const filled = Math.round(fraction * WIDTH);
    const line = `${'\u2588'.repeat(filled)}${'\u2591'.repeat(WIDTH - filled)} ${Math.floor(fraction * 100)}% | ${suffix}`;
    // One column short of the width: a full row would wrap on some terminals, and \r would then redraw only its tail.
    const columns = this.stream.columns || 80;
    this.text = [...line].slice(0, Math.max(1, columns - 1)).join('');
    if (!this.drawn) this.stream.write('\x1b[?25l');
    this.drawn = true;
    this.stream.write(`\r${this.text}\x1b[K`);
  }

  /** Prints `line` (no newline) on `out` above the bar. */
  log(line: string, out: NodeJS.WritableStream = process.stdout): void {
    if (this.drawn) this.stream.write('\r\x1b[2K');
    out.write(`${line}\n`);
    if (this.drawn) this.stream.write(`${this.text}\x1b[K`);
  }

  /** Leaves the bar as last drawn, ends its line and shows the cursor; later calls do nothing. */
  stop(): void {
    if (!this.drawn) return;
    this.drawn = false;
    this.stream.write('\n\x1b[?25h');
  }
}
