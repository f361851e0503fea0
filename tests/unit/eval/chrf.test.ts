// Expected figures come from sacrebleu's own tests (mjpost/sacrebleu
// test/test_chrf.py at f615c72) and README, asserted to the tolerance those
// tests use (EPSILON = 1e-4). sacrebleu's test suite has no chrF++ case: the
// chrF++ figures below say "sacrebleu 2.6.0" and were produced by running that
// release (`CHRF(word_order=2)`), not published by it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { computeChrf, corpusChrf, CHRF_PLUS_PLUS, sentenceChrf, type ChrfOptions } from '../../../src/eval/chrf.js';
import { InvalidArgument } from '../../../src/common/errors.js';

const EPSILON = 1e-4;

function assertClose(actual: number, expected: number, epsilon: number, what = ''): void {
  assert.ok(Math.abs(actual - expected) < epsilon, `${what} expected ${expected} +/- ${epsilon}, got ${actual}`);
}

type Case = [hypotheses: string[], references: string[], expected: number];

/** sacrebleu's corpus_chrf takes one reference stream here; we take references per hypothesis. */
function corpus(hyps: string[], refStream: string[], options: ChrfOptions): number {
  return corpusChrf(hyps, refStream.map((r) => [r]), options).score;
}

// test_chrf.py `test_cases`: corpus_chrf(char_order=6, word_order=0, beta=3, eps_smoothing=True).
const EPS_CASES: Case[] = [
  [['abcdefg'], ['hijklmnop'], 0.0],
  [['a'], ['b'], 0.0],
  [[''], ['b'], 0.0],
  [[''], ['ref'], 0.0],
  [[''], ['reference'], 0.0],
  [['aa'], ['ab'], 8.3333],
  [['a', 'b'], ['a', 'c'], 8.3333],
  [['a'], ['a'], 16.6667],
  [['a b c'], ['a b c'], 50.0],
  [['a b c'], ['abc'], 50.0],
  [
    [' risk assessment must be made of those who are qualified and expertise in the sector - these are the scientists .'],
    ['risk assessment has to be undertaken by those who are qualified and expert in that area - that is the scientists .'],
    63.36173,
  ],
  [
    [' Die    Beziehung zwischen  Obama und Netanjahu ist nicht gerade  freundlich. '],
    ['Das Verhältnis zwischen Obama und Netanyahu ist nicht gerade freundschaftlich.'],
    64.1302698,
  ],
  [['Niemand hat die Absicht, eine Mauer zu errichten'], ['Niemand hat die Absicht, eine Mauer zu errichten'], 100.0],
];

// test_chrf.py `test_cases_effective_order`: the same with eps_smoothing=False (sacrebleu's default).
const EFFECTIVE_ORDER_CASES: Case[] = [
  [['a'], ['a'], 100.0],
  [[''], ['reference'], 0.0],
  [['a b c'], ['a b c'], 100.0],
  [['a b c'], ['abc'], 100.0],
  [[''], ['c'], 0.0],
  [['a', 'b'], ['a', 'c'], 50.0],
  [['aa'], ['ab'], 25.0],
];

// test_chrf.py `test_cases_keep_whitespace`: beta=3, remove_whitespace=False.
const KEEP_WHITESPACE_CASES: Case[] = [
  [
    ['Die Beziehung zwischen Obama und Netanjahu ist nicht gerade freundlich.'],
    ['Das Verhältnis zwischen Obama und Netanyahu ist nicht gerade freundschaftlich.'],
    67.3481606,
  ],
  [
    ['risk assessment must be made of those who are qualified and expertise in the sector - these are the scientists .'],
    ['risk assessment has to be undertaken by those who are qualified and expert in that area - that is the scientists .'],
    65.2414427,
  ],
];

// test_chrf.py `test_sentence_level_chrf`: sentence_chrf(hyp, refs, eps_smoothing=True), beta 2.
const SENTENCES: [hypothesis: string, references: string[], expected: number][] = [
  [
    'Co nás nejvíc trápí, protože lékaři si vybírají, kdo bude žít a kdo zemře.',
    ['Nejvíce smutní jsme z toho, že musíme rozhodovat o tom, kdo bude žít a kdo zemře.'],
    39.14078509,
  ],
  [
    'Nebo prostě nemají vybavení, které by jim pomohlo, uvedli lékaři.',
    ['A někdy nemáme ani potřebný materiál, abychom jim pomohli, popsali lékaři.'],
    31.22557079,
  ],
  [
    'Lapali po dechu, jejich životy skončily dřív, než skutečně začaly.',
    ['Lapali po dechu a pak jejich život skončil - dřív, než skutečně mohl začít, připomněli.'],
    57.15704367,
  ],
];

// The README example (also test_bleu.py `_hyps`/`_refs`), references per hypothesis.
const README_HYPS = ['The dog bit the man.', "It wasn't surprising.", 'The man had just bitten him.'];
const README_REFS = [
  ['The dog bit the man.', 'The dog had bit the man.'],
  ['It was not unexpected.', 'No one was surprised.'],
  ['The man bit him first.', 'The man had bitten the dog.'],
];

test('corpus chrF, eps smoothing, beta 3 (test_chrf.py test_chrf)', () => {
  for (const [hyps, refs, expected] of EPS_CASES) {
    assertClose(corpus(hyps, refs, { beta: 3, epsSmoothing: true }), expected, EPSILON, JSON.stringify(hyps));
  }
});

test('corpus chrF, effective order, beta 3 (test_chrf.py test_chrf_eff_order)', () => {
  for (const [hyps, refs, expected] of EFFECTIVE_ORDER_CASES) {
    assertClose(corpus(hyps, refs, { beta: 3 }), expected, EPSILON, JSON.stringify(hyps));
  }
});

test('corpus chrF keeping whitespace, beta 3 (test_chrf.py test_chrf_keep_whitespace)', () => {
  for (const [hyps, refs, expected] of KEEP_WHITESPACE_CASES) {
    assertClose(corpus(hyps, refs, { beta: 3, whitespace: true }), expected, EPSILON, JSON.stringify(hyps));
  }
});

test('sentence chrF, eps smoothing, default beta 2 (test_chrf.py test_chrf_sentence_level)', () => {
  for (const [hyp, refs, expected] of SENTENCES) {
    assertClose(sentenceChrf(hyp, refs, { epsSmoothing: true }).score, expected, EPSILON, hyp);
  }
});

test('defaults: corpus chrF2 of the README example is 59.73 (README `chrF2 = 59.73`), best reference per segment', () => {
  const score = corpusChrf(README_HYPS, README_REFS);
  assert.equal(score.name, 'chrF2');
  // sacrebleu 2.6.0: 59.72751782684763.
  assertClose(score.score, 59.72751782684763, 1e-9, 'corpus chrF2');
  assertClose(sentenceChrf(README_HYPS[1], README_REFS[1]).score, 35.34635301425291, 1e-9, 'sentence chrF2');
  assert.ok(Math.abs(sentenceChrf(README_HYPS[0], README_REFS[0]).score - 100) < 1e-9, 'an exact match scores 100');
});

test('chrF++ (word order 2): corpus and sentence level (sacrebleu 2.6.0)', () => {
  const score = corpusChrf(README_HYPS, README_REFS, CHRF_PLUS_PLUS);
  assert.equal(score.name, 'chrF2++');
  assert.equal(score.hyp.length, 8, 'six character orders, then two word orders');
  assertClose(score.score, 59.15310444399262, 1e-9, 'corpus chrF++');
  assertClose(sentenceChrf(README_HYPS[1], README_REFS[1], CHRF_PLUS_PLUS).score, 29.14513880802484, 1e-9, 'sentence chrF++');
  const [czech, , gasped] = SENTENCES;
  assertClose(sentenceChrf(czech[0], czech[1], CHRF_PLUS_PLUS).score, 40.3769131075315, 1e-9, 'czech[0]');
  assertClose(sentenceChrf(gasped[0], gasped[1], CHRF_PLUS_PLUS).score, 54.134581828446215, 1e-9, 'czech[2]');
  const both = corpusChrf([czech[0], gasped[0]], [czech[1], gasped[1]], CHRF_PLUS_PLUS).score;
  assertClose(both, 47.50010877823318, 1e-9, 'corpus of two');
  // Punctuation is split off word ends, so '(hi) there!' and '(hi) there !' share every word n-gram.
  assertClose(sentenceChrf('(hi) there!', ['(hi) there !'], CHRF_PLUS_PLUS).score, 100, 1e-9, 'punctuation');
});

test('corpus chrF sums statistics, it is not the mean of sentence chrF', () => {
  const mean = README_HYPS.reduce((s, h, i) => s + sentenceChrf(h, README_REFS[i]).score, 0) / README_HYPS.length;
  assert.ok(Math.abs(mean - corpusChrf(README_HYPS, README_REFS).score) > 1);
});

test('option and input errors are InvalidArgument naming the field', () => {
  assert.throws(() => corpusChrf([], []), InvalidArgument);
  assert.throws(() => corpusChrf(['a'], [[]]), InvalidArgument);
  assert.throws(() => corpusChrf(['a'], [['a']], { beta: 0 }), /`beta` must be > 0, got 0/);
  assert.throws(() => corpusChrf(['a'], [['a']], { charOrder: 1.5 }), /`charOrder` must be an integer >= 0, got 1.5/);
  assert.throws(() => corpusChrf(['a'], [['a']], { charOrder: 0 }), /`wordOrder` must be >= 1/);
  assert.throws(() => computeChrf({ hyp: [1], ref: [1], match: [1] }), /must have charOrder \+ wordOrder \(6\) entries/);
});
