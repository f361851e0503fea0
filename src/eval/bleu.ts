/**
 * BLEU exactly as sacrebleu 2.x computes it (`sacrebleu/metrics/bleu.py`):
 * defaults are the `13a` tokenizer, maximum n-gram order 4, `exp` smoothing,
 * mixed case, and the closest reference length for the brevity penalty.
 */
import { InvalidArgument } from '../common/errors.js';
import { checkCorpus } from './corpus-args.js';
import { pyRstrip, pySplit } from './python-text.js';
import { tokenize13a } from './tokenizer-13a.js';

/** `13a` (sacrebleu's default) or `none` (split on whitespace only). */
export type BleuTokenizer = '13a' | 'none';

/**
 * sacrebleu's smoothing methods (Chen & Cherry, WMT 2014): `exp` (method 3,
 * mteval-v13a's; the default), `floor` (method 1, default value 0.1), `add-k`
 * (method 2, default value 1), `none`.
 */
export type SmoothMethod = 'exp' | 'floor' | 'add-k' | 'none';

/** Options mirroring sacrebleu's `BLEU(...)` constructor. */
export interface BleuOptions {
  /** Default `13a`. */
  tokenize?: BleuTokenizer;
  /** Default `exp`. */
  smoothMethod?: SmoothMethod;
  /** For `floor` (default 0.1) and `add-k` (default 1); ignored otherwise. */
  smoothValue?: number;
  /** Lowercase hypotheses and references first. Default false. */
  lowercase?: boolean;
  /** Highest n-gram order. Default 4. */
  maxNgramOrder?: number;
  /**
   * Average only over the orders the hypothesis has n-grams of. Default false
   * for corpus BLEU, true for {@link sentenceBleu} (sacrebleu's defaults).
   */
  effectiveOrder?: boolean;
}

/** Sufficient statistics of BLEU; they add up over segments. */
export interface BleuStats {
  /** Hypothesis length in tokens. */
  sysLen: number;
  /** Closest reference length in tokens. */
  refLen: number;
  /** Matched (clipped) n-grams per order, index 0 = unigrams. */
  counts: number[];
  /** Hypothesis n-grams per order. */
  totals: number[];
}

/** sacrebleu's `BLEUScore`. */
export interface BleuScore extends BleuStats {
  /** BLEU, 0..100. */
  score: number;
  /** n-gram precisions in percent, 0..100, index 0 = unigrams. */
  precisions: number[];
  /** Brevity penalty, 0..1. */
  bp: number;
}

interface ResolvedOptions {
  tokenize: BleuTokenizer;
  smoothMethod: SmoothMethod;
  smoothValue: number | undefined;
  lowercase: boolean;
  maxNgramOrder: number;
  effectiveOrder: boolean;
}

const SMOOTH_DEFAULTS: Record<SmoothMethod, number | undefined> = {
  none: undefined,
  floor: 0.1,
  'add-k': 1,
  exp: undefined,
};

function resolve(options: BleuOptions, effectiveOrderDefault: boolean): ResolvedOptions {
  const maxNgramOrder = options.maxNgramOrder ?? 4;
  if (!Number.isInteger(maxNgramOrder) || maxNgramOrder < 1) {
    throw new InvalidArgument(`\`maxNgramOrder\` must be an integer >= 1, got ${maxNgramOrder}`);
  }
  const smoothMethod = options.smoothMethod ?? 'exp';
  if (!(smoothMethod in SMOOTH_DEFAULTS)) {
    throw new InvalidArgument(`\`smoothMethod\` must be exp, floor, add-k or none, got ${smoothMethod}`);
  }
  const tokenize = options.tokenize ?? '13a';
  if (tokenize !== '13a' && tokenize !== 'none') {
    throw new InvalidArgument(`\`tokenize\` must be 13a or none, got ${String(tokenize)}`);
  }
  return {
    tokenize,
    smoothMethod,
    smoothValue: options.smoothValue,
    lowercase: options.lowercase ?? false,
    maxNgramOrder,
    effectiveOrder: options.effectiveOrder ?? effectiveOrderDefault,
  };
}

/** sacrebleu's `my_log`: log, floored to -9999999999 at zero. */
function myLog(x: number): number {
  return x === 0 ? -9999999999 : Math.log(x);
}

/**
 * Scores sufficient statistics: sacrebleu's `BLEU.compute_bleu`, rule for rule.
 * Option defaults are those of sacrebleu's `BLEU()` (exp smoothing), not of
 * the static `compute_bleu` (no smoothing). As in sacrebleu, statistics
 * without a single matched n-gram score 0 whatever the smoothing, and `add-k`
 * adds k to the counts and totals of orders 2 and up, and the returned
 * `counts`/`totals` are those smoothed values.
 */
export function computeBleu(stats: BleuStats, options: BleuOptions = {}): BleuScore {
  const opts = resolve(options, false);
  const order = opts.maxNgramOrder;
  if (stats.counts.length !== order || stats.totals.length !== order) {
    throw new InvalidArgument(
      `\`counts\` and \`totals\` must have maxNgramOrder (${order}) entries, got ${stats.counts.length} and ${stats.totals.length}`,
    );
  }
  const smoothValue = opts.smoothValue ?? SMOOTH_DEFAULTS[opts.smoothMethod];
  const counts = [...stats.counts];
  const totals = [...stats.totals];
  const { sysLen, refLen } = stats;

  let bp = 1.0;
  if (sysLen < refLen) bp = sysLen > 0 ? Math.exp(1 - refLen / sysLen) : 0.0;

  const precisions: number[] = new Array<number>(order).fill(0);
  // Early stop if there are no matches (sacrebleu #141).
  if (!counts.some((c) => c !== 0)) {
    return { score: 0.0, counts, totals, precisions, bp, sysLen, refLen };
  }

  let smoothMteval = 1.0;
  let effOrder = order;
  for (let n = 1; n <= order; n++) {
    if (opts.smoothMethod === 'add-k' && n > 1) {
      counts[n - 1] += smoothValue ?? 0;
      totals[n - 1] += smoothValue ?? 0;
    }
    if (totals[n - 1] === 0) break;
    if (opts.effectiveOrder) effOrder = n;
    if (counts[n - 1] === 0) {
      if (opts.smoothMethod === 'exp') {
        smoothMteval *= 2;
        precisions[n - 1] = 100.0 / (smoothMteval * totals[n - 1]);
      } else if (opts.smoothMethod === 'floor') {
        precisions[n - 1] = (100.0 * (smoothValue ?? 0)) / totals[n - 1];
      }
    } else {
      precisions[n - 1] = (100.0 * counts[n - 1]) / totals[n - 1];
    }
  }

  let logSum = 0;
  for (let i = 0; i < effOrder; i++) logSum += myLog(precisions[i]);
  const score = bp * Math.exp(logSum / effOrder);
  return { score, counts, totals, precisions, bp, sysLen, refLen };
}

function preprocess(segment: string, opts: ResolvedOptions): string {
  const text = opts.lowercase ? segment.toLowerCase() : segment;
  const stripped = pyRstrip(text);
  return opts.tokenize === '13a' ? tokenize13a(stripped) : stripped;
}

/** All n-grams of orders 1..maxOrder, counted; keys are tokens joined by a space per order. */
function ngramCounts(tokens: string[], maxOrder: number): Map<string, number>[] {
  const byOrder: Map<string, number>[] = [];
  for (let n = 1; n <= maxOrder; n++) {
    const counts = new Map<string, number>();
    for (let i = 0; i + n <= tokens.length; i++) {
      const key = tokens.slice(i, i + n).join(' ');
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    byOrder.push(counts);
  }
  return byOrder;
}

/**
 * sacrebleu's `_get_closest_ref_len`: the reference length nearest the
 * hypothesis length; on a tie, the shorter reference.
 */
export function closestRefLength(hypLen: number, refLens: readonly number[]): number {
  let closestDiff = -1;
  let closestLen = -1;
  for (const refLen of refLens) {
    const diff = Math.abs(hypLen - refLen);
    if (closestDiff === -1 || diff < closestDiff) {
      closestDiff = diff;
      closestLen = refLen;
    } else if (diff === closestDiff && refLen < closestLen) {
      closestLen = refLen;
    }
  }
  return closestLen;
}

function segmentStats(hypothesis: string, references: readonly string[], opts: ResolvedOptions): BleuStats {
  const order = opts.maxNgramOrder;
  // Reference n-gram counts are the maximum over the references.
  const refNgrams: Map<string, number>[] = Array.from({ length: order }, () => new Map());
  const refLens: number[] = [];
  for (const ref of references) {
    const tokens = pySplit(preprocess(ref, opts));
    refLens.push(tokens.length);
    ngramCounts(tokens, order).forEach((counts, n) => {
      for (const [key, count] of counts) {
        refNgrams[n].set(key, Math.max(refNgrams[n].get(key) ?? 0, count));
      }
    });
  }
  const hypTokens = pySplit(preprocess(hypothesis, opts));
  const counts = new Array<number>(order).fill(0);
  const totals = new Array<number>(order).fill(0);
  ngramCounts(hypTokens, order).forEach((hypCounts, n) => {
    for (const [key, count] of hypCounts) {
      totals[n] += count;
      const refCount = refNgrams[n].get(key);
      if (refCount !== undefined) counts[n] += Math.min(count, refCount);
    }
  });
  return { sysLen: hypTokens.length, refLen: closestRefLength(hypTokens.length, refLens), counts, totals };
}

/**
 * BLEU statistics of each segment against its references, as sacrebleu
 * collects them before summing. `references[i]` holds every reference of
 * `hypotheses[i]` (sacrebleu takes reference streams instead: this is their
 * transpose, and lets each hypothesis have its own number of references).
 */
export function bleuSegmentStats(
  hypotheses: readonly string[],
  references: readonly (readonly string[])[],
  options: BleuOptions = {},
): BleuStats[] {
  checkCorpus(hypotheses, references);
  const opts = resolve(options, false);
  return hypotheses.map((hyp, i) => segmentStats(hyp, references[i], opts));
}

/** Element-wise sum of segment statistics (sacrebleu's `sum_of_lists`); needs at least one. */
export function sumBleuStats(stats: readonly BleuStats[]): BleuStats {
  if (stats.length === 0) throw new InvalidArgument('`stats` must not be empty');
  const maxNgramOrder = stats[0].counts.length;
  const total: BleuStats = {
    sysLen: 0,
    refLen: 0,
    counts: new Array<number>(maxNgramOrder).fill(0),
    totals: new Array<number>(maxNgramOrder).fill(0),
  };
  for (const s of stats) {
    total.sysLen += s.sysLen;
    total.refLen += s.refLen;
    for (let n = 0; n < maxNgramOrder; n++) {
      total.counts[n] += s.counts[n];
      total.totals[n] += s.totals[n];
    }
  }
  return total;
}

/**
 * Corpus BLEU as sacrebleu's `BLEU(**options).corpus_score(hypotheses, refs)`
 * computes it, where `references[i]` lists the references of `hypotheses[i]`
 * (one or more; an empty string is a reference of length 0, as in sacrebleu).
 * Statistics are summed over the corpus and scored once: this is not the mean
 * of sentence BLEU.
 *
 * @throws InvalidArgument when the corpus is empty, the lengths differ, or a
 *   hypothesis has no reference.
 */
export function corpusBleu(
  hypotheses: readonly string[],
  references: readonly (readonly string[])[],
  options: BleuOptions = {},
): BleuScore {
  return computeBleu(sumBleuStats(bleuSegmentStats(hypotheses, references, options)), options);
}

/**
 * Sentence BLEU as sacrebleu's `sentence_bleu(hypothesis, references)`:
 * same defaults as corpus BLEU except `effectiveOrder`, which defaults to true.
 */
export function sentenceBleu(hypothesis: string, references: readonly string[], options: BleuOptions = {}): BleuScore {
  const resolved = { ...options, effectiveOrder: options.effectiveOrder ?? true };
  const [stats] = bleuSegmentStats([hypothesis], [references], resolved);
  return computeBleu(stats, resolved);
}
