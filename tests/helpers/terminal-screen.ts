/**
 * A small model of a VT100-style terminal, enough to replay what a CLI writes
 * to a pseudo-terminal: printable text with autowrap (DECAWM, ESC[?7l / h),
 * CR, LF (the pty turns \n into \r\n), backspace, ESC 7 / ESC 8 (save and
 * restore the cursor, screen-relative), CSI K (erase in line), G (column),
 * A/B/C/D (moves), H (position), J (erase below); other CSI sequences (SGR,
 * cursor visibility) change nothing on screen. Rows that scroll off the top
 * go to the scrollback; `lines()` returns scrollback and screen, trailing
 * blank rows dropped.
 */
export class TerminalScreen {
  private readonly scrollback: string[][] = [];
  private readonly rows: string[][];
  private row = 0;
  private col = 0;
  private pendingWrap = false;
  private autowrap = true;
  private saved: [number, number] = [0, 0];

  constructor(readonly width = 80, readonly height = 24) {
    this.rows = Array.from({ length: height }, () => []);
  }

  private lineFeed(): void {
    if (this.row < this.height - 1) this.row++;
    else {
      this.scrollback.push(this.rows.shift()!);
      this.rows.push([]);
    }
  }

  private put(ch: string): void {
    if (this.pendingWrap && this.autowrap) {
      this.col = 0;
      this.lineFeed();
    }
    this.pendingWrap = false;
    const r = this.rows[this.row]!;
    while (r.length < this.col) r.push(' ');
    r[this.col] = ch;
    if (this.col === this.width - 1) this.pendingWrap = true;
    else this.col++;
  }

  /** Replays `data` (what the pty produced). */
  write(data: string): void {
    for (let i = 0; i < data.length; i++) {
      const ch = data[i]!;
      if (ch === '\x1b') {
        const next = data[i + 1];
        if (next === '7') (this.saved = [this.row, this.col]), i++;
        else if (next === '8') ([this.row, this.col] = this.saved), (this.pendingWrap = false), i++;
        else if (next === '[') {
          const m = /^\[([?]?)([\d;]*)([A-Za-z@])/.exec(data.slice(i + 1));
          if (!m) continue;
          i += m[0].length;
          this.csi(m[1]!, m[2]!.split(';').map((n) => (n === '' ? NaN : Number(n))), m[3]!);
        }
        continue;
      }
      if (ch === '\r') (this.col = 0), (this.pendingWrap = false);
      else if (ch === '\n') this.lineFeed();
      else if (ch === '\b') (this.col = Math.max(0, this.col - 1)), (this.pendingWrap = false);
      else if (ch >= ' ') this.put(ch);
    }
  }

  private csi(priv: string, params: number[], final: string): void {
    const n = Number.isNaN(params[0]!) ? 0 : params[0]!;
    const r = this.rows[this.row]!;
    if (priv === '?') {
      if (n === 7) this.autowrap = final === 'h';
      return;
    }
    this.pendingWrap = false;
    if (final === 'K') {
      if (n === 0) r.splice(this.col);
      else if (n === 1) for (let c = 0; c <= this.col && c < r.length; c++) r[c] = ' ';
      else r.splice(0);
    } else if (final === 'G') this.col = Math.min(this.width - 1, Math.max(1, n || 1) - 1);
    else if (final === 'A') this.row = Math.max(0, this.row - (n || 1));
    else if (final === 'B') this.row = Math.min(this.height - 1, this.row + (n || 1));
    else if (final === 'C') this.col = Math.min(this.width - 1, this.col + (n || 1));
    else if (final === 'D') this.col = Math.max(0, this.col - (n || 1));
    else if (final === 'H') (this.row = Math.min(this.height - 1, Math.max(1, n || 1) - 1)), (this.col = Math.max(1, Number.isNaN(params[1]!) ? 1 : params[1]!) - 1);
    else if (final === 'J' && n === 0) {
      r.splice(this.col);
      for (let k = this.row + 1; k < this.height; k++) this.rows[k] = [];
    }
  }

  /** Every row written (scrollback, then screen), right-trimmed, trailing blank rows dropped. */
  lines(): string[] {
    const all = [...this.scrollback, ...this.rows].map((r) => r.join('').replace(/\s+$/, ''));
    while (all.length > 0 && all.at(-1) === '') all.pop();
    return all;
  }

  /** The cursor's row in lines() terms, and column. */
  cursor(): { row: number; col: number } {
    return { row: this.scrollback.length + this.row, col: this.col };
  }
}
