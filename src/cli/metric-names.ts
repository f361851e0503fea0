/**
 * The CLI's names of the Evaluate metrics, derived from the generated `Metric`
 * enum: `--metrics` takes a metric's CLI name (`rougeL`), its enum name
 * (`METRIC_ROUGE_L`), the enum name without its prefix (`rouge_l`) or its
 * MetricValues JSON key (`rougeL`), in any case and with `-` for `_`; the CLI
 * prints the CLI name (a table header is it in capitals).
 *
 * A metric added to the enum (and to MetricValues under the enum's name in
 * camelCase, as proto3 names it) needs nothing here: its CLI name is the enum
 * name without `METRIC_`, in lower case. Only a metric whose usual spelling
 * differs gets a line in {@link SPELLINGS}.
 */
import { InvalidArgumentError } from 'commander';
import { Metric, type MetricValues } from '../gen/gentune/v1/evaluate.js';

type MetricEnumName = Exclude<keyof typeof Metric, 'METRIC_UNSPECIFIED' | 'UNRECOGNIZED'>;

/** CLI names other than the lower-cased enum suffix: the reference tools' spellings. */
const SPELLINGS: Partial<Record<MetricEnumName, string>> = {
  METRIC_ROUGE_L: 'rougeL', // rouge-score's key
  METRIC_CHRF_PLUS_PLUS: 'chrf++', // sacrebleu's name
};

/** One metric as the CLI knows it. */
export interface MetricName {
  metric: Metric;
  /** The enum value's name, "METRIC_ROUGE_L". */
  enumName: string;
  /** What the CLI prints, "rougeL". */
  name: string;
  /** Its field in MetricValues, "rougeL". */
  key: keyof MetricValues;
}

const PREFIX = 'METRIC_';

/** "token_accuracy" -> "tokenAccuracy": proto3's JSON / ts-proto name of a field. */
const camelCase = (snake: string) => snake.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** Folds a spelling for comparison: case, the METRIC_ prefix and - vs _ do not matter. */
const fold = (s: string) => s.trim().toLowerCase().replace(/-/g, '_').replace(/^metric_/, '');

/** Every metric of the enum, in enum order (UNSPECIFIED and UNRECOGNIZED left out). */
export const METRIC_NAMES: readonly MetricName[] = Object.entries(Metric)
  .filter((entry): entry is [MetricEnumName, Metric] => typeof entry[1] === 'number' && entry[1] > 0)
  .sort(([, a], [, b]) => a - b)
  .map(([enumName, metric]) => {
    const suffix = enumName.slice(PREFIX.length).toLowerCase();
    return { metric, enumName, name: SPELLINGS[enumName] ?? suffix, key: camelCase(suffix) as keyof MetricValues };
  });

const BY_SPELLING = new Map<string, MetricName>(
  METRIC_NAMES.flatMap((m) => [m.name, m.enumName, m.key].map((s): [string, MetricName] => [fold(s), m])),
);

/** The metric `spelling` names, or undefined. */
export function findMetric(spelling: string): MetricName | undefined {
  return BY_SPELLING.get(fold(spelling));
}

/**
 * A commander parser for `--metrics a,b,c`: the metrics, in the order given,
 * each once; an unknown name is an error that lists the valid ones.
 */
export function metricsArg(value: string): MetricName[] {
  const spellings = value.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = spellings.filter((s) => !findMetric(s));
  if (unknown.length > 0) {
    throw new InvalidArgumentError(
      `\`--metrics\`: unknown metric ${unknown.map((s) => JSON.stringify(s)).join(', ')}; ` +
        `valid: ${METRIC_NAMES.map((m) => m.name).join(', ')} (or the enum names, ${METRIC_NAMES[0]!.enumName}, ...)`,
    );
  }
  return [...new Set(spellings.map((s) => findMetric(s)!))];
}
