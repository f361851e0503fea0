import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from 'commander';
import { EvaluateResponse, Metric, MetricValues } from '../../../src/gen/gentune/v1/evaluate.js';
import { evaluationTable } from '../../../src/cli/evaluate-command.js';
import { findMetric, METRIC_NAMES, metricsArg } from '../../../src/cli/metric-names.js';

test('every Metric of the enum has one CLI name and a MetricValues field', () => {
  const values = Object.values(Metric).filter((v): v is Metric => typeof v === 'number' && v > 0);
  assert.deepEqual(METRIC_NAMES.map((m) => m.metric), values.sort((a, b) => a - b));
  assert.equal(new Set(METRIC_NAMES.map((m) => m.name)).size, METRIC_NAMES.length);
  for (const m of METRIC_NAMES) {
    // fromJSON reads only MetricValues' own fields: the key is one.
    assert.equal(MetricValues.fromJSON({ [m.key]: 0.5 })[m.key], 0.5, `${m.enumName} -> MetricValues.${m.key}`);
    assert.equal(Metric[m.metric], m.enumName);
  }
});

test('the CLI names are the reference tools\' spellings', () => {
  assert.deepEqual(
    METRIC_NAMES.map((m) => m.name).slice(0, 11),
    ['loss', 'perplexity', 'token_accuracy', 'bleu', 'rouge1', 'rouge2', 'rougeL', 'exact_match', 'chrf', 'chrf++', 'meteor'],
  );
});

test('a metric is found by its CLI name, enum name, enum suffix or JSON key, in any case', () => {
  for (const s of ['rougeL', 'METRIC_ROUGE_L', 'metric_rouge_l', 'ROUGE_L', 'rouge_l', 'rouge-l', 'rougel', 'RougeL']) {
    assert.equal(findMetric(s)?.metric, Metric.METRIC_ROUGE_L, s);
  }
  for (const s of ['chrf++', 'CHRF++', 'METRIC_CHRF_PLUS_PLUS', 'chrf_plus_plus', 'chrfPlusPlus']) assert.equal(findMetric(s)?.metric, Metric.METRIC_CHRF_PLUS_PLUS, s);
  for (const s of ['token_accuracy', 'tokenAccuracy', 'TOKEN-ACCURACY', 'METRIC_TOKEN_ACCURACY']) assert.equal(findMetric(s)?.metric, Metric.METRIC_TOKEN_ACCURACY, s);
  // No spelling of one metric is a spelling of another.
  for (const m of METRIC_NAMES) for (const s of [m.name, m.enumName, m.key]) assert.equal(findMetric(s), m, s);
  assert.equal(findMetric('rouge'), undefined);
  assert.equal(findMetric('METRIC_UNSPECIFIED'), undefined);
  assert.equal(findMetric('unrecognized'), undefined);
});

test('--metrics keeps the order given, each metric once; unknown names are an error listing the valid ones', () => {
  assert.deepEqual(metricsArg('METRIC_LOSS, rougeL,rouge_l,bleu').map((m) => m.name), ['loss', 'rougeL', 'bleu']);
  assert.throws(
    () => metricsArg('loss,rogue,meteors'),
    (err: Error) => {
      assert.ok(err instanceof InvalidArgumentError);
      assert.match(err.message, /^`--metrics`: unknown metric "rogue", "meteors"; valid: loss, perplexity, token_accuracy, bleu, rouge1, rouge2, rougeL, exact_match, chrf, chrf\+\+, meteor/);
      assert.match(err.message, /METRIC_LOSS/);
      return true;
    },
  );
});

test('the table heads a column with the CLI name whatever spelling asked for it', () => {
  const res = EvaluateResponse.fromPartial({ results: [{ adapter: '', metrics: { rougeL: 0.25, chrfPlusPlus: 40 }, evalSeconds: 1 }] });
  const text = evaluationTable(res, metricsArg('METRIC_ROUGE_L,chrf_plus_plus'));
  assert.equal(text, 'MODEL  ROUGEL  CHRF++  SECONDS\nbase   0.25    40      1\n');
});
