/**
 * sacrebleu's default BLEU tokenizer, `13a` (mteval-v13a.pl as used by WMT),
 * ported from sacrebleu 2.x `tokenizers/tokenizer_13a.py` (Tokenizer13a) and
 * `tokenizers/tokenizer_re.py` (TokenizerRegexp).
 */
import { pySplit } from './python-text.js';

/**
 * TokenizerRegexp's substitutions, in order. The Python originals are quoted;
 * the first class is written with hex escapes because several of Python's
 * escapes (`\~`, `\&`, `\:`, `\@`, `` \` ``) are not valid in a `u` regex:
 *   r'([\{-\~\[-\` -\&\(-\+\:-\@\/])'  ->  r' \1 '
 *   r'([^0-9])([\.,])'                 ->  r'\1 \2 '   period/comma unless preceded by a digit
 *   r'([\.,])([^0-9])'                 ->  r' \1 \2'   period/comma unless followed by a digit
 *   r'([0-9])(-)'                      ->  r'\1 \2 '   dash when preceded by a digit
 * The `u` flag makes `[^0-9]` match one code point, as Python's `re` does.
 */
const SUBSTITUTIONS: ReadonlyArray<readonly [RegExp, string]> = [
  // {-~  [-`  space-&  (-+  :-@  /
  [/([\x7B-\x7E\x5B-\x60\x20-\x26\x28-\x2B\x3A-\x40\x2F])/gu, ' $1 '],
  [/([^0-9])([.,])/gu, '$1 $2 '],
  [/([.,])([^0-9])/gu, ' $1 $2'],
  [/([0-9])(-)/gu, '$1 $2 '],
];

/**
 * sacrebleu's TokenizerRegexp: the language-dependent punctuation splits, then
 * single spaces between tokens and none at either end (Python `str.split()`).
 */
export function tokenizeRegexp(line: string): string {
  let out = line;
  for (const [pattern, replacement] of SUBSTITUTIONS) out = out.replace(pattern, replacement);
  return pySplit(out).join(' ');
}

/**
 * Tokenizes one segment the way sacrebleu's `13a` tokenizer does: drops
 * `<skipped>`, joins words hyphenated across a line break, turns newlines into
 * spaces, unescapes `&quot; &amp; &lt; &gt;` (in that order, only when the line
 * holds an `&`), then applies {@link tokenizeRegexp} to the line padded with a
 * space on each side. Returns the tokens joined by single spaces.
 */
export function tokenize13a(line: string): string {
  let out = line.replaceAll('<skipped>', '').replaceAll('-\n', '').replaceAll('\n', ' ');
  if (out.includes('&')) {
    out = out
      .replaceAll('&quot;', '"')
      .replaceAll('&amp;', '&')
      .replaceAll('&lt;', '<')
      .replaceAll('&gt;', '>');
  }
  return tokenizeRegexp(` ${out} `);
}
