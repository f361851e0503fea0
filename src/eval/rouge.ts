/**
 * ROUGE exactly as Google's rouge-score computes it (`rouge/rouge_scorer.py`,
 * `rouge/tokenize.py`, `rouge/scoring.py` in google-research/google-research,
 * published on PyPI as `rouge-score`). Its defaults replicate
 * `ROUGE-1.5.5.pl -e data -n 2 -a` (with `-m` when stemming).
 */
import { InvalidArgument } from '../common/errors.js';
import { checkCorpus } from './corpus-args.js';
import { PorterStemmer } from './porter-stemmer.js';

/** `rouge1` .. `rouge9` (n-gram overlap), `rougeL` (LCS), `rougeLsum` (summary-level LCS over `\n`-separated sentences). */
export type RougeType = `rouge${1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9}` | 'rougeL' | 'rougeLsum';

/** rouge-score's `Score` tuple; each value is 0..1. */
export interface RougeScore {
  precision: number;
  recall: number;
  fmeasure: number;
}

/** Options mirroring `RougeScorer(rouge_types, use_stemmer)`. */
export interface RougeOptions {
  /** Porter-stem tokens longer than 3 characters (NLTK's stemmer, default mode). Default false, as in rouge-score. */
  useStemmer?: boolean;
}

const ZERO: RougeScore = { precision: 0, recall: 0, fmeasure: 0 };

/**
 * rouge-score's default tokenizer (`tokenize.tokenize`): lowercase, replace
 * every run of characters outside `[a-z0-9]` with a space, split on
 * whitespace, stem tokens longer than 3 characters when a stemmer is given,
 * and keep only non-empty `[a-z0-9]+` tokens. Non-Latin text yields no tokens.
 */
export function rougeTokenize(text: string, stemmer: PorterStemmer | null = null): string[] {
  const tokens = text.toLowerCase().replace(/[^a-z0-9]+/gu, ' ').split(/\s+/u);
  const stemmed = stemmer === null ? tokens : tokens.map((t) => (t.length > 3 ? stemmer.stem(t) : t));
  return stemmed.filter((t) => /^[a-z0-9]+$/u.test(t));
}

/** rouge-score's `scoring.fmeasure`: harmonic mean, 0 when both are 0. */
export function fmeasure(precision: number, recall: number): number {
  return precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0.0;
}

function ngramCounts(tokens: readonly string[], n: number): Map<string, number> {
  const counts = new Map<string, number>();
  // Tokens are [a-z0-9]+, so a space cannot occur inside one.
  for (let i = 0; i + n <= tokens.length; i++) {
    const key = tokens.slice(i, i + n).join(' ');
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

/** rouge-score's `_score_ngrams`: clipped overlap over prediction (P) and target (R) n-gram counts. */
function scoreNgrams(target: Map<string, number>, prediction: Map<string, number>): RougeScore {
  let overlap = 0;
  let targetCount = 0;
  let predictionCount = 0;
  for (const [ngram, count] of target) {
    overlap += Math.min(count, prediction.get(ngram) ?? 0);
    targetCount += count;
  }
  for (const count of prediction.values()) predictionCount += count;
  const precision = overlap / Math.max(predictionCount, 1);
  const recall = overlap / Math.max(targetCount, 1);
  return { precision, recall, fmeasure: fmeasure(precision, recall) };
}

/** Full LCS length table, (ref.length + 1) x (can.length + 1), row-major. */
function lcsTable(ref: readonly string[], can: readonly string[]): Int32Array {
  const cols = can.length + 1;
  const table = new Int32Array((ref.length + 1) * cols);
  for (let i = 1; i <= ref.length; i++) {
    for (let j = 1; j <= can.length; j++) {
      table[i * cols + j] =
        ref[i - 1] === can[j - 1]
          ? table[(i - 1) * cols + j - 1] + 1
          : Math.max(table[(i - 1) * cols + j], table[i * cols + j - 1]);
    }
  }
  return table;
}

/** Length of the longest common subsequence, in O(can.length) memory. */
export function lcsLength(ref: readonly string[], can: readonly string[]): number {
  let previous = new Int32Array(can.length + 1);
  let current = new Int32Array(can.length + 1);
  for (let i = 1; i <= ref.length; i++) {
    for (let j = 1; j <= can.length; j++) {
      current[j] = ref[i - 1] === can[j - 1] ? previous[j - 1] + 1 : Math.max(previous[j], current[j - 1]);
    }
    [previous, current] = [current, previous];
  }
  return previous[can.length];
}

/** rouge-score's `lcs_ind` (`_backtrack_norec`): indices into `ref` of one LCS, ascending. */
export function lcsIndices(ref: readonly string[], can: readonly string[]): number[] {
  const table = lcsTable(ref, can);
  const cols = can.length + 1;
  const indices: number[] = [];
  let i = ref.length;
  let j = can.length;
  while (i > 0 && j > 0) {
    if (ref[i - 1] === can[j - 1]) {
      indices.push(i - 1);
      i--;
      j--;
    } else if (table[i * cols + j - 1] > table[(i - 1) * cols + j]) {
      j--;
    } else {
      i--;
    }
  }
  return indices.reverse();
}

/** rouge-score's `_score_lcs`: P = LCS / |prediction|, R = LCS / |target|. */
function scoreLcs(target: readonly string[], prediction: readonly string[]): RougeScore {
  if (target.length === 0 || prediction.length === 0) return { ...ZERO };
  const lcs = lcsLength(target, prediction);
  const precision = lcs / prediction.length;
  const recall = lcs / target.length;
  return { precision, recall, fmeasure: fmeasure(precision, recall) };
}

/**
 * rouge-score's `_summary_level_lcs` (ROUGE paper section 3.2): union LCS of
 * each reference sentence against all candidate sentences, with token counts
 * capping hits so that no token is counted twice (as ROUGE-1.5.5 does).
 */
function summaryLevelLcs(refSents: readonly string[][], canSents: readonly string[][]): RougeScore {
  if (refSents.length === 0 || canSents.length === 0) return { ...ZERO };
  const m = refSents.reduce((sum, s) => sum + s.length, 0);
  const n = canSents.reduce((sum, s) => sum + s.length, 0);
  if (n === 0 || m === 0) return { ...ZERO };
  const countTokens = (sents: readonly string[][]): Map<string, number> => {
    const counts = new Map<string, number>();
    for (const s of sents) for (const t of s) counts.set(t, (counts.get(t) ?? 0) + 1);
    return counts;
  };
  const refCounts = countTokens(refSents);
  const canCounts = countTokens(canSents);
  let hits = 0;
  for (const ref of refSents) {
    const union = new Set<number>();
    for (const can of canSents) for (const i of lcsIndices(ref, can)) union.add(i);
    for (const i of [...union].sort((a, b) => a - b)) {
      const token = ref[i];
      const c = canCounts.get(token) ?? 0;
      const r = refCounts.get(token) ?? 0;
      if (c > 0 && r > 0) {
        hits++;
        canCounts.set(token, c - 1);
        refCounts.set(token, r - 1);
      }
    }
  }
  const recall = hits / m;
  const precision = hits / n;
  return { precision, recall, fmeasure: fmeasure(precision, recall) };
}

function ngramOrder(type: string): number | null {
  const match = /^rouge([0-9])$/.exec(type);
  return match === null ? null : Number(match[1]);
}

/**
 * rouge-score's `RougeScorer`. Validates the types up front (rouge-score
 * raises only when scoring): `rouge1`..`rouge9`, `rougeL`, `rougeLsum`.
 */
export class RougeScorer {
  readonly types: readonly RougeType[];
  private readonly stemmer: PorterStemmer | null;

  constructor(types: readonly string[], options: RougeOptions = {}) {
    for (const type of types) {
      const n = ngramOrder(type);
      if (type !== 'rougeL' && type !== 'rougeLsum' && (n === null || n <= 0)) {
        throw new InvalidArgument(`\`rouge type\` must be rouge1..rouge9, rougeL or rougeLsum, got ${type}`);
      }
    }
    this.types = [...types] as RougeType[];
    this.stemmer = options.useStemmer === true ? new PorterStemmer() : null;
  }

  /** Tokens of `text` as this scorer sees them. */
  tokenize(text: string): string[] {
    return rougeTokenize(text, this.stemmer);
  }

  /**
   * Scores `prediction` against one `target`, in rouge-score's argument order
   * (target first). Precision is over the prediction, recall over the target.
   */
  score(target: string, prediction: string): Record<RougeType, RougeScore> {
    const targetTokens = this.tokenize(target);
    const predictionTokens = this.tokenize(prediction);
    const result = {} as Record<RougeType, RougeScore>;
    for (const type of this.types) {
      if (type === 'rougeL') {
        result[type] = scoreLcs(targetTokens, predictionTokens);
      } else if (type === 'rougeLsum') {
        // Sentences are separated by newlines; empty lines are dropped.
        const sentences = (text: string) =>
          text
            .split('\n')
            .filter((s) => s.length > 0)
            .map((s) => this.tokenize(s));
        result[type] = summaryLevelLcs(sentences(target), sentences(prediction));
      } else {
        const n = ngramOrder(type) as number;
        result[type] = scoreNgrams(ngramCounts(targetTokens, n), ngramCounts(predictionTokens, n));
      }
    }
    return result;
  }

  /**
   * rouge-score's `score_multi`: scores against every target and keeps, per
   * type, the score of the target with the highest F-measure (the first one on
   * a tie, as `np.argmax` does).
   */
  scoreMulti(targets: readonly string[], prediction: string): Record<RougeType, RougeScore> {
    if (targets.length === 0) throw new InvalidArgument('`targets` must hold at least one reference, got none');
    const all = targets.map((t) => this.score(t, prediction));
    const best = {} as Record<RougeType, RougeScore>;
    for (const type of this.types) {
      let index = 0;
      for (let i = 1; i < all.length; i++) if (all[i][type].fmeasure > all[index][type].fmeasure) index = i;
      best[type] = all[index][type];
    }
    return best;
  }
}

/** Corpus ROUGE: per-example scores and their mean. */
export interface CorpusRouge {
  /** Mean over examples of each of precision, recall and F-measure, per type. */
  aggregate: Record<RougeType, RougeScore>;
  /** One score per example, per type. */
  perExample: Record<RougeType, RougeScore>[];
}

/**
 * Scores each hypothesis against its references (`scoreMulti`: best F over
 * the references) and averages per example: the corpus F-measure is the mean
 * of per-example F-measures, not an F of pooled counts. rouge-score's
 * BootstrapAggregator reports as `mid` the median of bootstrap resample means,
 * an estimate of this exact mean; reported figures may differ from it in the
 * last digits.
 *
 * @throws InvalidArgument when the corpus is empty, the lengths differ, a
 *   hypothesis has no reference, or a type is unknown.
 */
export function corpusRouge(
  types: readonly RougeType[],
  hypotheses: readonly string[],
  references: readonly (readonly string[])[],
  options: RougeOptions = {},
): CorpusRouge {
  checkCorpus(hypotheses, references);
  const scorer = new RougeScorer(types, options);
  const perExample = hypotheses.map((hyp, i) => scorer.scoreMulti(references[i], hyp));
  const aggregate = {} as Record<RougeType, RougeScore>;
  for (const type of scorer.types) {
    const sum = { ...ZERO };
    for (const row of perExample) {
      sum.precision += row[type].precision;
      sum.recall += row[type].recall;
      sum.fmeasure += row[type].fmeasure;
    }
    const k = perExample.length;
    aggregate[type] = { precision: sum.precision / k, recall: sum.recall / k, fmeasure: sum.fmeasure / k };
  }
  return { aggregate, perExample };
}
