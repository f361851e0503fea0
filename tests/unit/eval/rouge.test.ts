// Expected figures come from Google's rouge-score tests (google-research/google-research,
// rouge/rouge_scorer_test.py, rouge/tokenize_test.py, rouge/tokenizers_test.py; the
// "AgainstRouge155" figures are ROUGE-1.5.5 perl runs) and from the Hugging Face
// evaluate metric card that wraps it (huggingface/evaluate metrics/rouge/README.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  corpusRouge,
  lcsIndices,
  lcsLength,
  RougeScorer,
  rougeTokenize,
  type RougeScore,
} from '../../../src/eval/rouge.js';
import { PorterStemmer } from '../../../src/eval/porter-stemmer.js';
import { InvalidArgument } from '../../../src/common/errors.js';
import { PREDICTION_MULTI_0, PREDICTIONS, TARGET_MULTI_0, TARGETS } from './rouge-testdata.js';

/** absltest's assertAlmostEqual(expected, actual, places): round(diff, places) == 0. */
function assertAlmostEqual(expected: number, actual: number, places = 7, what = ''): void {
  assert.ok(Math.abs(expected - actual) < 0.5 * 10 ** -places, `${what} expected ${expected} (${places} places), got ${actual}`);
}

function assertScore(actual: RougeScore, p: number, r: number, f: number, places = 7, what = ''): void {
  assertAlmostEqual(p, actual.precision, places, `${what} precision`);
  assertAlmostEqual(r, actual.recall, places, `${what} recall`);
  assertAlmostEqual(f, actual.fmeasure, places, `${what} fmeasure`);
}

test('tokenizer: tokenize_test.py test_give_me_a_name, tokenizers_test.py', () => {
  assert.deepEqual(rougeTokenize('one Two three'), ['one', 'two', 'three']);
  assert.deepEqual(rougeTokenize('one\n Two \nthree'), ['one', 'two', 'three']);
  assert.deepEqual(rougeTokenize('this is a test'), ['this', 'is', 'a', 'test']);
  // test_default_tokenizer_with_stemmer_init
  assert.deepEqual(rougeTokenize('the friends had a meeting', new PorterStemmer()), ['the', 'friend', 'had', 'a', 'meet']);
});

test('tokenizer drops non-[a-z0-9] text and stems only tokens longer than 3 characters', () => {
  // Lowercasing happens before the [a-z0-9] filter, as in tokenize.py, so
  // letters whose lowercase is ASCII survive (U+0130 -> i + U+0307, Kelvin sign -> k).
  assert.deepEqual(rougeTokenize('Café naïve 東京 😀 don\'t U.S.A. 3.14'), ['caf', 'na', 've', 'don', 't', 'u', 's', 'a', '3', '14']);
  assert.deepEqual(rougeTokenize('\u0130stanbul \u212Aelvin'), ['i', 'stanbul', 'kelvin']);
  assert.deepEqual(rougeTokenize('東京 😀'), []);
  const stemmer = new PorterStemmer();
  // 'dies' would stem to 'die' but 'ties', 'runs' (4 letters) do; 'was', 'has' (3) are left alone.
  assert.deepEqual(rougeTokenize('was has runs ties', stemmer), ['was', 'has', 'run', 'tie']);
});

test('rouge types: rouge_scorer_test.py testValidRougeTypes, testInvalidRougeTypes', () => {
  for (const type of ['rouge1', 'rouge9', 'rougeL', 'rougeLsum']) {
    const result = new RougeScorer([type]).score('testing one two', 'testing');
    assert.deepEqual(Object.keys(result), [type]);
  }
  for (const type of ['rougen', 'rouge0', 'rouge10']) {
    assert.throws(() => new RougeScorer([type]), InvalidArgument, type);
  }
});

test('rouge_scorer_test.py testRouge1, testRouge2, testRougeLConsecutive, testRougeLNonConsecutive', () => {
  assertScore(new RougeScorer(['rouge1']).score('testing one two', 'testing').rouge1, 1, 1 / 3, 1 / 2);
  assertScore(new RougeScorer(['rouge2']).score('testing one two', 'testing one').rouge2, 1, 1 / 2, 2 / 3);
  assertScore(new RougeScorer(['rougeL']).score('testing one two', 'testing one').rougeL, 1, 2 / 3, 4 / 5);
  assertScore(new RougeScorer(['rougeL']).score('testing one two', 'testing two').rougeL, 1, 2 / 3, 4 / 5);
});

test('rouge_scorer_test.py testMultipleRougeTypes', () => {
  const result = new RougeScorer(['rouge1', 'rougeL']).score('testing one two', 'testing one');
  assert.deepEqual(Object.keys(result).sort(), ['rouge1', 'rougeL']);
  assertScore(result.rouge1, 1, 2 / 3, 4 / 5);
  assertScore(result.rougeL, 1, 2 / 3, 4 / 5);
});

test('empty prediction scores 0: rouge_scorer_test.py testRougeEmpty', () => {
  for (const type of ['rouge1', 'rouge2', 'rougeL', 'rougeLsum'] as const) {
    assertScore(new RougeScorer([type]).score('testing one two', '')[type], 0, 0, 0, 7, type);
  }
});

test('zero overlap scores 0 and F is 0, not NaN', () => {
  const result = new RougeScorer(['rouge1', 'rouge2', 'rougeL']).score('alpha beta gamma', 'delta epsilon');
  for (const type of ['rouge1', 'rouge2', 'rougeL'] as const) assert.deepEqual(result[type], { precision: 0, recall: 0, fmeasure: 0 });
});

test('against ROUGE-1.5.5 without stemming: testRouge1/2/LAgainstRouge155', () => {
  const scorer = new RougeScorer(['rouge1', 'rouge2', 'rougeL']);
  const first = scorer.score(TARGETS[0], PREDICTIONS[0]);
  assertScore(first.rouge1, 0.6875, 0.40741, 0.51163, 5, 'rouge1[0]');
  assertScore(first.rouge2, 0.53333, 0.30769, 0.39024, 5, 'rouge2[0]');
  assertScore(first.rougeL, 0.6875, 0.40741, 0.51163, 5, 'rougeL[0]');
  const second = scorer.score(TARGETS[1], PREDICTIONS[1]);
  assertScore(second.rouge1, 0.65385, 0.40476, 0.5, 5, 'rouge1[1]');
  assertScore(second.rouge2, 0.48, 0.29268, 0.36364, 5, 'rouge2[1]');
  assertScore(second.rougeL, 0.65385, 0.40476, 0.5, 5, 'rougeL[1]');
});

test('against ROUGE-1.5.5 with stemming: testRouge1/2AgainstRouge155WithStemming', () => {
  const scorer = new RougeScorer(['rouge1', 'rouge2'], { useStemmer: true });
  const first = scorer.score(TARGETS[0], PREDICTIONS[0]);
  assertScore(first.rouge1, 0.6875, 0.40741, 0.51163, 5, 'rouge1[0]');
  assertScore(first.rouge2, 0.53333, 0.30769, 0.39024, 5, 'rouge2[0]');
  // Stemming changes the second pair's unigram score (0.65385/0.40476/0.5 without).
  const second = scorer.score(TARGETS[1], PREDICTIONS[1]);
  assertScore(second.rouge1, 0.69231, 0.42857, 0.52941, 5, 'rouge1[1]');
  assertScore(second.rouge2, 0.48, 0.29268, 0.36364, 5, 'rouge2[1]');
});

test('summary-level LCS: testRougeLsum, testRougeLSumAgainstRouge155WithStemming', () => {
  const scorer = new RougeScorer(['rougeLsum']);
  const result = scorer.score('w1 w2 w3 w4 w5', 'w1 w2 w6 w7 w8\nw1 w3 w8 w9 w5').rougeLsum;
  assertAlmostEqual(0.8, result.recall);
  assertAlmostEqual(0.4, result.precision);
  assertAlmostEqual(0.5333, result.fmeasure, 3);
  assertScore(scorer.score('w1 w2 w3 w4 w5', '').rougeLsum, 0, 0, 0, 3);
  assertScore(scorer.score('', 'w1').rougeLsum, 0, 0, 0, 3);
  assertScore(scorer.score('w1 w2 w3 w4 w5', '/').rougeLsum, 0, 0, 0, 3);
  const stemmed = new RougeScorer(['rougeLsum'], { useStemmer: true }).score(TARGET_MULTI_0, PREDICTION_MULTI_0);
  assertScore(stemmed.rougeLsum, 0.66667, 0.36538, 0.47205, 5);
});

test('LCS table and backtrack: rouge_scorer_test.py testLcsTable', () => {
  const ref = ['1', '2', '3', '4', '5'];
  assert.equal(lcsLength(ref, ['2', '5', '3', '4']), 3);
  assert.deepEqual(lcsIndices(ref, ['2', '5', '3', '4']), [1, 2, 3]);
  assert.equal(lcsLength(ref, ['8', '9']), 0);
  assert.deepEqual(lcsIndices(ref, ['8', '9']), []);
});

test('several references: best F wins, first on a tie (rouge_scorer.py score_multi, np.argmax)', () => {
  const scorer = new RougeScorer(['rouge1']);
  // 'testing' alone: P 1/3 R 1 F 1/2; the longer reference: P 1 R 3/4 F 6/7.
  assertScore(scorer.scoreMulti(['testing', 'testing one two three'], 'testing one two').rouge1, 1, 3 / 4, 6 / 7);
  // Both give F = 2/3, with precision and recall swapped: the first listed is kept.
  assertScore(scorer.scoreMulti(['alpha', 'alpha beta gamma delta'], 'alpha beta').rouge1, 1 / 2, 1, 2 / 3);
  assertScore(scorer.scoreMulti(['alpha beta gamma delta', 'alpha'], 'alpha beta').rouge1, 1, 1 / 2, 2 / 3);
  assert.throws(() => scorer.scoreMulti([], 'alpha'), InvalidArgument);
});

test('corpus ROUGE is the mean of per-example F over the ROUGE-1.5.5 pairs (testRouge1AgainstRouge155)', () => {
  const result = corpusRouge(['rouge1', 'rougeL'], PREDICTIONS, TARGETS.map((t) => [t]));
  assertAlmostEqual(0.51163, result.perExample[0].rouge1.fmeasure, 5);
  assertAlmostEqual(0.5, result.perExample[1].rouge1.fmeasure, 5);
  // Mean of the two published F-measures (each to 5 places), not an F of pooled counts.
  assert.ok(Math.abs(result.aggregate.rouge1.fmeasure - (0.51163 + 0.5) / 2) < 1e-5);
  assert.ok(Math.abs(result.aggregate.rouge1.precision - (0.6875 + 0.65385) / 2) < 1e-5);
  assert.ok(Math.abs(result.aggregate.rougeL.recall - (0.40741 + 0.40476) / 2) < 1e-5);
});

test('corpus ROUGE: huggingface/evaluate metrics/rouge/README.md examples', () => {
  // "How to Use": identical texts give 1.0 for every type.
  const same = corpusRouge(['rouge1', 'rouge2', 'rougeL'], ['hello there', 'general kenobi'], [['hello there'], ['general kenobi']]);
  assert.equal(same.aggregate.rouge1.fmeasure, 1);
  assert.equal(same.aggregate.rouge2.fmeasure, 1);
  assert.equal(same.aggregate.rougeL.fmeasure, 1);
  // "Examples": the card prints rouge1 [0.5, 0.0] (mean 0.25) for this pair, but
  // rouge-score itself (and this port) gives P 1/2, R 1, so F 2/3 for the first.
  const result = corpusRouge(['rouge1'], ['hello goodbye', 'ankh morpork'], [['goodbye'], ['general kenobi']]);
  assert.deepEqual(result.perExample.map((row) => row.rouge1), [
    { precision: 0.5, recall: 1, fmeasure: 2 / 3 },
    { precision: 0, recall: 0, fmeasure: 0 },
  ]);
  assert.equal(result.aggregate.rouge1.fmeasure, 1 / 3);
  assert.throws(() => corpusRouge(['rouge1'], [], []), InvalidArgument);
  assert.throws(() => corpusRouge(['rouge1'], ['a'], [[]]), /`references\[0\]`/);
});
