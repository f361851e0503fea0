/**
 * chrF (Popović 2015) and chrF++ (Popović 2017) exactly as sacrebleu 2.x
 * computes them (`sacrebleu/metrics/chrf.py`): character n-grams up to order
 * 6 with whitespace removed, no word n-grams (chrF++: word order 2), beta 2,
 * mixed case, and sacrebleu's default effective-order averaging
 * (`eps_smoothing=False`).
 */
import { InvalidArgument } from '../common/errors.js';
import { checkCorpus } from './corpus-args.js';
import { pySplit } from './python-text.js';

/** Options mirroring sacrebleu's `CHRF(...)` constructor. */
export interface ChrfOptions {
  /** Highest character n-gram order. Default 6. */
  charOrder?: number;
  /** Highest word n-gram order; 2 makes chrF++. Default 0. */
  wordOrder?: number;
  /** Weight of recall relative to precision. Default 2. */
  beta?: number;
  /** Lowercase hypotheses and references first. Default false. */
  lowercase?: boolean;
  /** Keep whitespace inside character n-grams. Default false (removed). */
  whitespace?: boolean;
  /**
   * chrF++.py / Moses / NLTK epsilon smoothing (mean of per-order F-scores)
   * instead of sacrebleu's default: one F-score of the precision and recall
   * averaged over the orders both sides have n-grams of. Default false.
   */
  epsSmoothing?: boolean;
}

/** chrF++: the options that turn chrF into chrF++ (word n-grams up to order 2). */
export const CHRF_PLUS_PLUS: Readonly<ChrfOptions> = Object.freeze({ wordOrder: 2 });

/**
 * Sufficient statistics of chrF; they add up over segments. One entry per
 * order, character orders 1..charOrder first, then word orders 1..wordOrder.
 */
export interface ChrfStats {
  /** Hypothesis n-grams per order (0 where the reference has none of that order). */
  hyp: number[];
  /** Reference n-grams per order. */
  ref: number[];
  /** Matched (clipped) n-grams per order. */
  match: number[];
}

/** sacrebleu's `CHRFScore`. */
export interface ChrfScore extends ChrfStats {
  /** chrF (chrF++ when wordOrder is 2), 0..100. */
  score: number;
  /** sacrebleu's name for the variant, e.g. `chrF2` or `chrF2++`. */
  name: string;
}

interface ResolvedOptions {
  charOrder: number;
  wordOrder: number;
  beta: number;
  lowercase: boolean;
  whitespace: boolean;
  epsSmoothing: boolean;
}

function checkOrder(field: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min) {
    throw new InvalidArgument(`\`${field}\` must be an integer >= ${min}, got ${value}`);
  }
  return value;
}

function resolve(options: ChrfOptions): ResolvedOptions {
  const beta = options.beta ?? 2;
  if (!Number.isFinite(beta) || beta <= 0) throw new InvalidArgument(`\`beta\` must be > 0, got ${beta}`);
  const charOrder = checkOrder('charOrder', options.charOrder ?? 6, 0);
  const wordOrder = checkOrder('wordOrder', options.wordOrder ?? 0, 0);
  if (charOrder + wordOrder === 0) throw new InvalidArgument('`charOrder` + `wordOrder` must be >= 1, got 0');
  return {
    charOrder,
    wordOrder,
    beta,
    lowercase: options.lowercase ?? false,
    whitespace: options.whitespace ?? false,
    epsSmoothing: options.epsSmoothing ?? false,
  };
}

// string.punctuation, as sacrebleu's `CHRF._PUNCTS`.
const PUNCTS = new Set('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~');

/**
 * sacrebleu's `_remove_punctuation`: split on whitespace, then split one
 * punctuation mark off the end (else the start) of each word longer than one
 * character ('(hi)' becomes '(hi' and ')', sacrebleu issue #124).
 */
function wordsWithPunctuationSplit(sentence: string): string[] {
  const words: string[] = [];
  for (const w of pySplit(sentence)) {
    // Python indexes code points, not UTF-16 units.
    const chars = Array.from(w);
    if (chars.length === 1) {
      words.push(w);
    } else if (PUNCTS.has(chars[chars.length - 1])) {
      words.push(chars.slice(0, -1).join(''), chars[chars.length - 1]);
    } else if (PUNCTS.has(chars[0])) {
      words.push(chars[0], chars.slice(1).join(''));
    } else {
      words.push(w);
    }
  }
  return words;
}

function count(keys: Iterable<string>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const k of keys) counts.set(k, (counts.get(k) ?? 0) + 1);
  return counts;
}

function* windows(items: readonly string[], n: number, separator: string): Generator<string> {
  for (let i = 0; i + n <= items.length; i++) yield items.slice(i, i + n).join(separator);
}

/** Counted n-grams of every order: sacrebleu's `extract_all_char_ngrams` then `extract_word_ngrams`. */
function allNgrams(sentence: string, opts: ResolvedOptions): Map<string, number>[] {
  const text = opts.lowercase ? sentence.toLowerCase() : sentence;
  const chars = Array.from(opts.whitespace ? text : pySplit(text).join(''));
  const orders: Map<string, number>[] = [];
  for (let n = 1; n <= opts.charOrder; n++) orders.push(count(windows(chars, n, '')));
  if (opts.wordOrder > 0) {
    const words = wordsWithPunctuationSplit(text);
    for (let n = 1; n <= opts.wordOrder; n++) orders.push(count(windows(words, n, ' ')));
  }
  return orders;
}

/**
 * Scores sufficient statistics: sacrebleu's `CHRF._compute_f_score`, rule for
 * rule, including its per-order epsilon of 1e-16 under `epsSmoothing`.
 */
export function computeChrf(stats: ChrfStats, options: ChrfOptions = {}): ChrfScore {
  const opts = resolve(options);
  const order = opts.charOrder + opts.wordOrder;
  if (stats.hyp.length !== order || stats.ref.length !== order || stats.match.length !== order) {
    throw new InvalidArgument(
      `\`hyp\`, \`ref\` and \`match\` must have charOrder + wordOrder (${order}) entries, got ${stats.hyp.length}, ${stats.ref.length} and ${stats.match.length}`,
    );
  }
  const name = `chrF${opts.beta}${'+'.repeat(opts.wordOrder)}`;
  const result = (score: number): ChrfScore => ({ score, name, hyp: [...stats.hyp], ref: [...stats.ref], match: [...stats.match] });
  const eps = 1e-16;
  const factor = opts.beta ** 2;
  let score = 0;
  let avgPrec = 0;
  let avgRec = 0;
  let effectiveOrder = 0;
  for (let i = 0; i < order; i++) {
    const nHyp = stats.hyp[i];
    const nRef = stats.ref[i];
    const nMatch = stats.match[i];
    const prec = nHyp > 0 ? nMatch / nHyp : eps;
    const rec = nRef > 0 ? nMatch / nRef : eps;
    const denom = factor * prec + rec;
    score += denom > 0 ? ((1 + factor) * prec * rec) / denom : eps;
    if (nHyp > 0 && nRef > 0) {
      avgPrec += prec;
      avgRec += rec;
      effectiveOrder += 1;
    }
  }
  if (opts.epsSmoothing) return result((100 * score) / order);
  if (effectiveOrder === 0) return result(0);
  avgPrec /= effectiveOrder;
  avgRec /= effectiveOrder;
  if (avgPrec + avgRec === 0) return result(0);
  return result((100 * ((1 + factor) * avgPrec * avgRec)) / (factor * avgPrec + avgRec));
}

/** sacrebleu's `_get_match_statistics` for every order, as one stats record. */
function matchStats(hypNgrams: Map<string, number>[], refNgrams: Map<string, number>[]): ChrfStats {
  const stats: ChrfStats = { hyp: [], ref: [], match: [] };
  hypNgrams.forEach((hyp, i) => {
    const ref = refNgrams[i];
    let hypCount = 0;
    let matchCount = 0;
    for (const [key, c] of hyp) {
      hypCount += c;
      const r = ref.get(key);
      if (r !== undefined) matchCount += Math.min(c, r);
    }
    let refCount = 0;
    for (const c of ref.values()) refCount += c;
    // Hypothesis n-grams do not count where the reference has none of that order.
    stats.hyp.push(ref.size > 0 ? hypCount : 0);
    stats.ref.push(refCount);
    stats.match.push(matchCount);
  });
  return stats;
}

function segmentStats(hypothesis: string, references: readonly string[], opts: ResolvedOptions): ChrfStats {
  const hypNgrams = allNgrams(hypothesis, opts);
  let best: ChrfStats | undefined;
  let bestScore = -1;
  // Several references: keep the statistics of the one with the best F-score (first on a tie).
  for (const ref of references) {
    const stats = matchStats(hypNgrams, allNgrams(ref, opts));
    const score = computeChrf(stats, opts).score;
    if (score > bestScore) {
      bestScore = score;
      best = stats;
    }
  }
  // checkCorpus guarantees a reference, and every score is >= 0 > -1.
  return best!;
}

/**
 * chrF statistics of each segment against its best reference, as sacrebleu
 * collects them before summing. `references[i]` holds every reference of
 * `hypotheses[i]` (the transpose of sacrebleu's reference streams).
 */
export function chrfSegmentStats(
  hypotheses: readonly string[],
  references: readonly (readonly string[])[],
  options: ChrfOptions = {},
): ChrfStats[] {
  checkCorpus(hypotheses, references);
  const opts = resolve(options);
  return hypotheses.map((hyp, i) => segmentStats(hyp, references[i], opts));
}

/** Element-wise sum of segment statistics (sacrebleu's `sum_of_lists`); needs at least one. */
export function sumChrfStats(stats: readonly ChrfStats[]): ChrfStats {
  if (stats.length === 0) throw new InvalidArgument('`stats` must not be empty');
  const order = stats[0].hyp.length;
  const total: ChrfStats = {
    hyp: new Array<number>(order).fill(0),
    ref: new Array<number>(order).fill(0),
    match: new Array<number>(order).fill(0),
  };
  for (const s of stats) {
    for (let i = 0; i < order; i++) {
      total.hyp[i] += s.hyp[i];
      total.ref[i] += s.ref[i];
      total.match[i] += s.match[i];
    }
  }
  return total;
}

/**
 * Corpus chrF as sacrebleu's `CHRF(**options).corpus_score(hypotheses, refs)`
 * computes it, where `references[i]` lists the references of `hypotheses[i]`.
 * Statistics are summed over the corpus and scored once: this is not the mean
 * of sentence chrF. Pass {@link CHRF_PLUS_PLUS} (or `wordOrder: 2`) for chrF++.
 *
 * @throws InvalidArgument when the corpus is empty, the lengths differ, a
 *   hypothesis has no reference, or an option is out of range.
 */
export function corpusChrf(
  hypotheses: readonly string[],
  references: readonly (readonly string[])[],
  options: ChrfOptions = {},
): ChrfScore {
  return computeChrf(sumChrfStats(chrfSegmentStats(hypotheses, references, options)), options);
}

/** Sentence chrF as sacrebleu's `sentence_chrf(hypothesis, references)`; same defaults as corpus chrF. */
export function sentenceChrf(hypothesis: string, references: readonly string[], options: ChrfOptions = {}): ChrfScore {
  const [stats] = chrfSegmentStats([hypothesis], [references], options);
  return computeChrf(stats, options);
}
