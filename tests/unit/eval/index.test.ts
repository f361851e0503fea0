// The corpus is the multi-reference README example of mjpost/sacrebleu (also
// test/test_bleu.py `_hyps`/`_refs`). Per-example values were produced by
// sacrebleu 2.6.0 `sentence_bleu` and rouge-score's `score_multi`; METEOR by
// `tests/reference/meteor_reference.py score` (NLTK 3.8 meteor_score).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { computeGenerationMetrics, type GenerationMetricName } from '../../../src/eval/index.js';
import { InvalidArgument } from '../../../src/common/errors.js';

const HYPS = ['The dog bit the man.', "It wasn't surprising.", 'The man had just bitten him.'];
const REFS = [
  ['The dog bit the man.', 'The dog had bit the man.'],
  ['It was not unexpected.', 'No one was surprised.'],
  ['The man bit him first.', 'The man had bitten the dog.'],
];
const ALL: GenerationMetricName[] = ['bleu', 'chrf', 'chrf_plus_plus', 'rouge1', 'rouge2', 'rougeL', 'meteor', 'exact_match'];

function assertClose(actual: number | undefined, expected: number, epsilon: number, what = ''): void {
  assert.ok(actual !== undefined && Math.abs(actual - expected) < epsilon, `${what} expected ${expected}, got ${actual}`);
}

test('aggregates: corpus BLEU (sacrebleu test_corpus_bleu 48.530827), mean ROUGE F, exact match', () => {
  const result = computeGenerationMetrics(ALL, HYPS, REFS);
  assertClose(result.aggregates.bleu, 48.530827, 1e-8, 'bleu');
  assertClose(result.aggregates.rouge1, (1 + 0.25 + 2 / 3) / 3, 1e-12, 'rouge1');
  assertClose(result.aggregates.rouge2, (1 + 0 + 0.4) / 3, 1e-12, 'rouge2');
  assertClose(result.aggregates.rougeL, (1 + 0.25 + 2 / 3) / 3, 1e-12, 'rougeL');
  assert.equal(result.aggregates.exact_match, 1 / 3);
  assert.deepEqual(result.details.bleu?.counts, [14, 7, 5, 3]);
  assertClose(result.details.rouge?.rouge1?.precision, (1 + 1 / 4 + 2 / 3) / 3, 1e-12, "rouge1 precision");
});

test('per-example rows: sentence BLEU, ROUGE F against the best reference, 0/1 exact match', () => {
  const { perExample } = computeGenerationMetrics(ALL, HYPS, REFS);
  assert.equal(perExample.length, 3);
  const bleu = [100.00000000000004, 14.794015674776452, 29.071536848410968];
  perExample.forEach((row, i) => assertClose(row.bleu, bleu[i], 1e-9, `bleu[${i}]`));
  assert.deepEqual(perExample.map((row) => row.rouge2), [1, 0, 0.4000000000000001]);
  assert.deepEqual(perExample.map((row) => row.exact_match), [1, 0, 0]);
});

test('chrF and chrF++: sacrebleu corpus scores in aggregates, sentence scores per example (sacrebleu 2.6.0)', () => {
  const result = computeGenerationMetrics(['chrf', 'chrf_plus_plus'], HYPS, REFS);
  assertClose(result.aggregates.chrf, 59.72751782684763, 1e-9, 'chrf');
  assertClose(result.aggregates.chrf_plus_plus, 59.15310444399262, 1e-9, 'chrf++');
  assert.equal(result.details.chrf_plus_plus?.name, 'chrF2++');
  assertClose(result.perExample[1].chrf, 35.34635301425291, 1e-9, 'chrf[1]');
  assertClose(result.perExample[1].chrf_plus_plus, 29.14513880802484, 1e-9, 'chrf++[1]');
  const beta3 = computeGenerationMetrics(['chrf'], ['aa'], [['ab']], { chrf: { beta: 3 } });
  assertClose(beta3.aggregates.chrf, 25.0, 1e-4, 'test_chrf.py effective order ["aa"] vs ["ab"]');
});

test('METEOR: NLTK meteor_score per example (best reference), their mean in aggregates', () => {
  const result = computeGenerationMetrics(['meteor'], HYPS, REFS);
  const nltk = [0.996, 0.12820512820512822, 0.5260416666666666];
  result.perExample.forEach((row, i) => assertClose(row.meteor, nltk[i], 1e-12, `meteor[${i}]`));
  assertClose(result.aggregates.meteor, (nltk[0] + nltk[1] + nltk[2]) / 3, 1e-12, 'meteor');
});

test('only the requested metrics are computed, duplicates once', () => {
  const result = computeGenerationMetrics(['rougeL', 'rougeL'], HYPS, REFS);
  assert.deepEqual(Object.keys(result.aggregates), ['rougeL']);
  assert.deepEqual(Object.keys(result.perExample[0]), ['rougeL']);
  assert.equal(result.details.bleu, undefined);
});

test('options reach each metric', () => {
  const folded = computeGenerationMetrics(['exact_match'], ['the dog bit the man.'], [['The dog bit the man.']], {
    exactMatch: { caseFold: true },
  });
  assert.equal(folded.aggregates.exact_match, 1);
  const stemmed = computeGenerationMetrics(['rouge1'], ['meetings'], [['meeting']], { rougeUseStemmer: true });
  assert.equal(stemmed.aggregates.rouge1, 1);
  const unstemmed = computeGenerationMetrics(['rouge1'], ['meetings'], [['meeting']]);
  assert.equal(unstemmed.aggregates.rouge1, 0);
  const bleuNone = computeGenerationMetrics(['bleu'], HYPS, REFS, { bleu: { tokenize: 'none' } });
  assertClose(bleuNone.aggregates.bleu, 49.1919566, 1e-8, 'tokenize none');
});

test('empty hypotheses score zero everywhere', () => {
  const result = computeGenerationMetrics(ALL, ['', '', ''], REFS);
  assert.deepEqual(result.aggregates, { bleu: 0, chrf: 0, chrf_plus_plus: 0, rouge1: 0, rouge2: 0, rougeL: 0, meteor: 0, exact_match: 0 });
});

test('bad requests are rejected with InvalidArgument', () => {
  assert.throws(() => computeGenerationMetrics(['cider' as GenerationMetricName], HYPS, REFS), /`metrics` must be among/);
  assert.throws(() => computeGenerationMetrics(ALL, [], []), InvalidArgument);
  assert.throws(() => computeGenerationMetrics(ALL, HYPS, REFS.slice(1)), /one entry per hypothesis \(3\), got 2/);
});
