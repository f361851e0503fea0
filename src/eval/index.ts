/**
 * Evaluation metrics: generation metrics (BLEU, chrF, ROUGE, METEOR, exact match) scored
 * against references, and token-level loss, perplexity and accuracy.
 */
import { InvalidArgument } from '../common/errors.js';
import { type BleuOptions, type BleuScore, computeBleu, bleuSegmentStats, sumBleuStats } from './bleu.js';
import { type ChrfOptions, type ChrfScore, CHRF_PLUS_PLUS, chrfSegmentStats, computeChrf, sumChrfStats } from './chrf.js';
import { checkCorpus } from './corpus-args.js';
import { corpusExactMatch, type ExactMatchOptions } from './exact-match.js';
import { corpusMeteor, type MeteorOptions } from './meteor.js';
import { corpusRouge, type RougeScore, type RougeType } from './rouge.js';

export * from './bleu.js';
export * from './chrf.js';
export * from './exact-match.js';
export * from './meteor.js';
export * from './perplexity.js';
export * from './porter-stemmer.js';
export * from './rouge.js';
export * from './token-accuracy.js';
export { tokenize13a } from './tokenizer-13a.js';

/** Generation metrics by their names in the Evaluate RPC. */
export type GenerationMetricName = 'bleu' | 'chrf' | 'chrf_plus_plus' | 'rouge1' | 'rouge2' | 'rougeL' | 'meteor' | 'exact_match';

const GENERATION_METRICS: readonly GenerationMetricName[] = [
  'bleu', 'chrf', 'chrf_plus_plus', 'rouge1', 'rouge2', 'rougeL', 'meteor', 'exact_match',
];

/** Options of {@link computeGenerationMetrics}; defaults are each tool's own. */
export interface GenerationMetricsOptions {
  /** sacrebleu options; default 13a, exp smoothing, order 4. */
  bleu?: BleuOptions;
  /** sacrebleu chrF options for `chrf`; default char order 6, beta 2. `chrf_plus_plus` adds word order 2. */
  chrf?: ChrfOptions;
  /** rouge-score's `use_stemmer`. Default false. */
  rougeUseStemmer?: boolean;
  /** NLTK meteor_score parameters; default alpha 0.9, beta 3, gamma 0.5. */
  meteor?: MeteorOptions;
  /** Exact-match options; default case-sensitive. */
  exactMatch?: ExactMatchOptions;
}

/** One value per requested metric. */
export type MetricValues = Partial<Record<GenerationMetricName, number>>;

/** Result of {@link computeGenerationMetrics}. */
export interface GenerationMetrics {
  /**
   * Corpus values: `bleu` is sacrebleu's corpus BLEU (0..100, statistics
   * pooled over the corpus); `chrf`/`chrf_plus_plus` are sacrebleu's corpus
   * chrF/chrF++ (0..100, statistics pooled likewise); `rouge1`/`rouge2`/`rougeL` are the mean of
   * per-example ROUGE F-measures (0..1); `meteor` is the mean of per-example
   * METEOR scores (0..1); `exact_match` is the fraction of
   * examples matching a reference (0..1).
   */
  aggregates: MetricValues;
  /**
   * One row per example: `bleu` is sacrebleu's sentence BLEU (0..100, exp
   * smoothing, effective order); `chrf`/`chrf_plus_plus` sentence chrF/chrF++
   * (0..100); ROUGE values are that example's F-measure
   * against its best reference; `meteor` is NLTK's meteor_score of the example (0..1,
   * best over its references); `exact_match` is 0 or 1.
   */
  perExample: MetricValues[];
  /** Full detail: BLEU statistics and ROUGE precision/recall means. */
  details: {
    bleu?: BleuScore;
    chrf?: ChrfScore;
    chrf_plus_plus?: ChrfScore;
    rouge?: Partial<Record<RougeType, RougeScore>>;
  };
}

/**
 * Scores generated `hypotheses` against `references` (`references[i]` lists
 * every reference of `hypotheses[i]`, one or more) with the named metrics.
 * Each metric is computed as its reference tool does: BLEU and chrF as sacrebleu,
 * ROUGE as Google's rouge-score (best of several references per example, as
 * its `score_multi`), METEOR as NLTK's meteor_score, exact match as {@link normalizeForExactMatch}.
 *
 * @throws InvalidArgument for an unknown metric name, an empty corpus,
 *   mismatched lengths, or a hypothesis without references.
 */
export function computeGenerationMetrics(
  names: readonly GenerationMetricName[],
  hypotheses: readonly string[],
  references: readonly (readonly string[])[],
  options: GenerationMetricsOptions = {},
): GenerationMetrics {
  for (const name of names) {
    if (!GENERATION_METRICS.includes(name)) {
      throw new InvalidArgument(`\`metrics\` must be among ${GENERATION_METRICS.join(', ')}, got ${String(name)}`);
    }
  }
  checkCorpus(hypotheses, references);
  const wanted = new Set(names);
  const aggregates: MetricValues = {};
  const perExample: MetricValues[] = hypotheses.map(() => ({}));
  const details: GenerationMetrics['details'] = {};

  if (wanted.has('bleu')) {
    const bleuOptions = options.bleu ?? {};
    const stats = bleuSegmentStats(hypotheses, references, bleuOptions);
    details.bleu = computeBleu(sumBleuStats(stats), bleuOptions);
    aggregates.bleu = details.bleu.score;
    const sentenceOptions = { ...bleuOptions, effectiveOrder: bleuOptions.effectiveOrder ?? true };
    stats.forEach((s, i) => {
      perExample[i].bleu = computeBleu(s, sentenceOptions).score;
    });
  }

  for (const name of ['chrf', 'chrf_plus_plus'] as const) {
    if (!wanted.has(name)) continue;
    const chrfOptions = name === 'chrf' ? (options.chrf ?? {}) : { ...options.chrf, ...CHRF_PLUS_PLUS };
    const stats = chrfSegmentStats(hypotheses, references, chrfOptions);
    details[name] = computeChrf(sumChrfStats(stats), chrfOptions);
    aggregates[name] = details[name].score;
    stats.forEach((s, i) => {
      perExample[i][name] = computeChrf(s, chrfOptions).score;
    });
  }

  const rougeTypes = (['rouge1', 'rouge2', 'rougeL'] as const).filter((t) => wanted.has(t));
  if (rougeTypes.length > 0) {
    const rouge = corpusRouge(rougeTypes, hypotheses, references, { useStemmer: options.rougeUseStemmer });
    details.rouge = {};
    for (const type of rougeTypes) {
      details.rouge[type] = rouge.aggregate[type];
      aggregates[type] = rouge.aggregate[type].fmeasure;
      rouge.perExample.forEach((row, i) => {
        perExample[i][type] = row[type].fmeasure;
      });
    }
  }

  if (wanted.has('meteor')) {
    const meteor = corpusMeteor(hypotheses, references, options.meteor);
    aggregates.meteor = meteor.score;
    meteor.perExample.forEach((m, i) => {
      perExample[i].meteor = m;
    });
  }

  if (wanted.has('exact_match')) {
    const em = corpusExactMatch(hypotheses, references, options.exactMatch);
    aggregates.exact_match = em.score;
    em.perExample.forEach((m, i) => {
      perExample[i].exact_match = m;
    });
  }

  return { aggregates, perExample, details };
}
