/**
 * Exact match after a light, documented normalisation.
 */
import { checkCorpus } from './corpus-args.js';

/** Options of {@link normalizeForExactMatch}. */
export interface ExactMatchOptions {
  /** Compare case-insensitively (see {@link normalizeForExactMatch}). Default false. */
  caseFold?: boolean;
}

/**
 * The normalisation both sides go through before comparison, in order:
 * 1. Unicode NFC, so canonically equivalent spellings (`e` + U+0301 and `é`) are equal;
 * 2. trim, and collapse every run of whitespace (JavaScript's `\s`: Unicode
 *    White_Space plus U+FEFF) to one space;
 * 3. with `caseFold`, `toUpperCase()` then `toLowerCase()`: Unicode default
 *    case mappings, which fold like Unicode full case folding for most text
 *    (`Straße` equals `STRASSE`), independent of locale.
 * Punctuation, articles and accents are kept: `Paris.` does not match `Paris`.
 */
export function normalizeForExactMatch(text: string, options: ExactMatchOptions = {}): string {
  const collapsed = text.normalize('NFC').trim().replace(/\s+/gu, ' ');
  return options.caseFold === true ? collapsed.toUpperCase().toLowerCase() : collapsed;
}

/** 1 when the normalised hypothesis equals any normalised reference, else 0. */
export function exactMatch(hypothesis: string, references: readonly string[], options: ExactMatchOptions = {}): 0 | 1 {
  const hyp = normalizeForExactMatch(hypothesis, options);
  return references.some((ref) => normalizeForExactMatch(ref, options) === hyp) ? 1 : 0;
}

/** Corpus exact match: per-example 0/1 and their mean. */
export interface CorpusExactMatch {
  /** Fraction of examples that match, 0..1. */
  score: number;
  perExample: (0 | 1)[];
}

/**
 * Exact match of each hypothesis against its references (any may match),
 * averaged over examples.
 *
 * @throws InvalidArgument when the corpus is empty, the lengths differ, or a
 *   hypothesis has no reference.
 */
export function corpusExactMatch(
  hypotheses: readonly string[],
  references: readonly (readonly string[])[],
  options: ExactMatchOptions = {},
): CorpusExactMatch {
  checkCorpus(hypotheses, references);
  const perExample = hypotheses.map((hyp, i) => exactMatch(hyp, references[i], options));
  const matched = perExample.reduce<number>((sum, m) => sum + m, 0);
  return { score: matched / perExample.length, perExample };
}
