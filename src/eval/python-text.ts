/**
 * The few Python `str` behaviours that sacrebleu and rouge-score rely on, so
 * that a port gives the same tokens for any input, not only for ASCII.
 *
 * Python's `str.split()` and `str.rstrip()` (no arguments) use `str.isspace()`,
 * which is not JavaScript's `\s`: Python also counts U+001C..U+001F and U+0085
 * as whitespace, and does not count U+FEFF (the BOM). The class below is the
 * exact list `[c for c in map(chr, range(0x110000)) if c.isspace()]`.
 */
const PY_SPACE_CLASS =
  '\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';

const PY_SPACE_RUN = new RegExp(`[${PY_SPACE_CLASS}]+`, 'u');
const PY_TRAILING_SPACE = new RegExp(`[${PY_SPACE_CLASS}]+$`, 'u');

/** Python's `text.split()`: split on runs of whitespace, dropping empty pieces. */
export function pySplit(text: string): string[] {
  return text.split(PY_SPACE_RUN).filter((piece) => piece.length > 0);
}

/** Python's `text.rstrip()`: remove trailing whitespace. */
export function pyRstrip(text: string): string {
  return text.replace(PY_TRAILING_SPACE, '');
}

