// Expected figures come from sacrebleu's own tests and README (mjpost/sacrebleu),
// asserted to the tolerance those tests use. Where a case says "sacrebleu 2.6.0",
// the figure was produced by running that release, not published by it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  closestRefLength,
  computeBleu,
  corpusBleu,
  sentenceBleu,
  type BleuOptions,
} from '../../../src/eval/bleu.js';
import { InvalidArgument } from '../../../src/common/errors.js';

function assertClose(actual: number, expected: number, epsilon: number, what = ''): void {
  assert.ok(Math.abs(actual - expected) < epsilon, `${what} expected ${expected} +/- ${epsilon}, got ${actual}`);
}

/** sacrebleu takes reference streams; we take references per hypothesis. */
function transpose(streams: string[][]): string[][] {
  return streams[0].map((_, i) => streams.map((stream) => stream[i]));
}

// mjpost/sacrebleu test/test_bleu.py: `_refs` / `_hyps` (the README example).
const REF_STREAMS = [
  ['The dog bit the man.', 'It was not unexpected.', 'The man bit him first.'],
  ['The dog had bit the man.', 'No one was surprised.', 'The man had bitten the dog.'],
];
const REFS = transpose(REF_STREAMS);
const HYPS = ['The dog bit the man.', "It wasn't surprising.", 'The man had just bitten him.'];

// sacrebleu's `raw_corpus_bleu(hyps, refs, smooth_value)`.
const raw = (smoothValue?: number): BleuOptions => ({
  smoothMethod: 'floor',
  smoothValue,
  tokenize: 'none',
  effectiveOrder: true,
});

test('multi-reference corpus BLEU: sacrebleu test_bleu.py test_corpus_bleu and README', () => {
  // test_corpus_bleu: (_hyps, _refs, {}, 48.530827), EPSILON = 1e-8.
  const bleu = corpusBleu(HYPS, REFS);
  assertClose(bleu.score, 48.530827, 1e-8, 'default BLEU');
  // README "Multiple References": BLEU = 48.53 82.4/50.0/45.5/37.5
  // (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18).
  assert.deepEqual(
    bleu.precisions.map((p) => p.toFixed(1)),
    ['82.4', '50.0', '45.5', '37.5'],
  );
  assert.equal(bleu.bp.toFixed(3), '0.943');
  assert.equal(bleu.sysLen, 17);
  assert.equal(bleu.refLen, 18);
  assert.equal((bleu.sysLen / bleu.refLen).toFixed(3), '0.944');
  // The statistics behind those precisions (sacrebleu 2.6.0: counts/totals).
  assert.deepEqual(bleu.counts, [14, 7, 5, 3]);
  assert.deepEqual(bleu.totals, [17, 14, 11, 8]);
});

test('corpus BLEU options: sacrebleu test_bleu.py test_corpus_bleu', () => {
  assertClose(corpusBleu(HYPS, REFS, { tokenize: 'none' }).score, 49.1919566, 1e-8, 'tokenize none');
  assertClose(corpusBleu(HYPS, REFS, { tokenize: '13a' }).score, 48.530827, 1e-8, 'tokenize 13a');
  assertClose(corpusBleu(HYPS, REFS, { smoothMethod: 'none' }).score, 48.530827, 1e-8, 'smooth none');
});

test('empty hypotheses score 0 and are not removed: sacrebleu test_bleu.py test_corpus_bleu', () => {
  // (('', '', ''), _refs, {}, 0.0)
  const bleu = corpusBleu(['', '', ''], REFS);
  assert.equal(bleu.score, 0);
  assert.equal(bleu.sysLen, 0);
  assert.equal(bleu.bp, 0);
  // An empty hypothesis still adds its reference length (sacrebleu 2.6.0: BP 0.651, 65.1439...).
  const half = corpusBleu(['The cat sat on the mat.', ''], [['The cat sat on the mat.'], ['Nothing here.']]);
  assert.equal(half.refLen, 10);
  assertClose(half.score, 65.14390575310559, 1e-9, 'one empty hypothesis');
});

test('maximum n-gram order: sacrebleu test_bleu.py test_max_ngram_order', () => {
  const expected = ['77.65', '60.50', '53.93', '48.53', '46.14', '43.28'];
  expected.forEach((score, i) => {
    assert.equal(corpusBleu(HYPS, REFS, { maxNgramOrder: i + 1 }).score.toFixed(2), score, `order ${i + 1}`);
  });
});

test('raw corpus BLEU: sacrebleu test_bleu.py test_raw_bleu, test_effective_order, test_offset', () => {
  // test_raw_bleu: zero matches score 0 (sacrebleu #141).
  assertClose(corpusBleu(['this is a test', 'another test'], [['ref1'], ['ref2']], raw(0.01)).score / 100, 0, 1e-8);
  assertClose(corpusBleu(['this is a test'], [['this is a test']], raw(0.01)).score / 100, 1.0, 1e-8);
  assertClose(corpusBleu(['this is a fest'], [['this is a test']], raw(0.01)).score / 100, 0.223606797749979, 1e-8);
  // test_effective_order
  assertClose(corpusBleu(['test'], [['a test']], raw(0.01)).score / 100, 0.3678794411714425, 1e-8);
  assertClose(corpusBleu(['a test'], [['a test']], raw(0.01)).score / 100, 1.0, 1e-8);
  assertClose(corpusBleu(['a little test'], [['a test']], raw(0.01)).score / 100, 0.03218297948685433, 1e-8);
  // test_offset: floor 0 gives 0; unset falls back to floor's default 0.1.
  const hyp = ['am I am a character sequence'];
  const ref = [['I am a symbol string sequence a a']];
  assertClose(corpusBleu(hyp, ref, raw(0.0)).score / 100, 0, 1e-8);
  assertClose(corpusBleu(hyp, ref, raw(undefined)).score / 100, 0.1555722182, 1e-8);
});

test('n-gram statistics: sacrebleu test_bleu.py test_statistics', () => {
  const bleu = corpusBleu(['am I am a character sequence'], [['I am a symbol string sequence a a']], raw(0.01));
  assert.deepEqual(bleu.counts, [4, 2, 1, 0]);
  assert.deepEqual(bleu.totals, [6, 5, 4, 3]);
});

test('scoring from statistics: sacrebleu test_bleu.py test_scoring, test_degenerate_statistics', () => {
  const score = computeBleu({ counts: [9, 7, 5, 3], totals: [10, 8, 6, 4], sysLen: 11, refLen: 11 }).score / 100;
  assertClose(score, 0.8375922397, 1e-8);
  const degenerate: [number[], number[], number, number, number][] = [
    [[0, 0, 0, 0], [4, 4, 2, 1], 0, 1, 0.0],
    [[0, 0, 0, 0], [10, 11, 12, 0], 14, 10, 0.0],
    [[0, 0, 0, 0], [0, 0, 0, 0], 0, 0, 0.0],
    [[6, 5, 4, 0], [6, 5, 4, 3], 6, 6, 0.0],
    [[0, 0, 0, 0], [0, 0, 0, 0], 0, 0, 0.1],
    [[0, 0, 0, 0], [0, 0, 0, 0], 1, 5, 0.01],
  ];
  for (const [counts, totals, sysLen, refLen, offset] of degenerate) {
    const bleu = computeBleu({ counts, totals, sysLen, refLen }, { smoothMethod: 'floor', smoothValue: offset });
    assert.equal(bleu.score / 100, 0.0, `${counts} / ${totals}`);
  }
});

// mjpost/sacrebleu test/test_sentence_bleu.py: the example of issue #98, whose
// Romanian text mixes s/t with cedilla (ţ) and with comma (ț): unicode input.
const REF_98 = 'producţia de zahăr brut se exprimă în zahăr alb;';
const SYS_98 = 'Producția de zahăr primă va fi exprimată în ceea ce privește zahărul alb;';

test('sentence BLEU on unicode text: sacrebleu test_sentence_bleu.py test_api_sentence_bleu', () => {
  const cases: [BleuOptions, number][] = [
    [{ smoothMethod: 'exp' }, 8.493],
    [{ smoothMethod: 'none' }, 0.0],
    [{ smoothMethod: 'floor' }, 4.51688],
    [{ smoothMethod: 'floor', smoothValue: 0.1 }, 4.51688],
    [{ smoothMethod: 'floor', smoothValue: 0.5 }, 10.1],
    [{ smoothMethod: 'add-k' }, 14.882],
    [{ smoothMethod: 'add-k', smoothValue: 1 }, 14.882],
    [{ smoothMethod: 'add-k', smoothValue: 2 }, 21.389],
    [{ smoothMethod: 'exp', tokenize: 'none' }, 7.347],
  ];
  for (const [options, expected] of cases) {
    // EPSILON = 1e-3 in that file.
    assertClose(sentenceBleu(SYS_98, [REF_98], options).score, expected, 1e-3, JSON.stringify(options));
  }
  // Defaults are sacrebleu.sentence_bleu's: exp smoothing, effective order.
  assertClose(sentenceBleu(SYS_98, [REF_98]).score, 8.493, 1e-3);
});

test('zero matches score 0 under every smoothing: sacrebleu test_sentence_bleu.py test_api_sentence_bleu_zero', () => {
  // Example of issue #141.
  const methods: BleuOptions[] = [
    { smoothMethod: 'exp' },
    { smoothMethod: 'none' },
    { smoothMethod: 'floor' },
    { smoothMethod: 'floor', smoothValue: 0.1 },
    { smoothMethod: 'add-k' },
    { smoothMethod: 'add-k', smoothValue: 1 },
  ];
  for (const options of methods) {
    const bleu = sentenceBleu('this is a cat', ['okay thanks'], options);
    assert.equal(bleu.score, 0, JSON.stringify(options));
    assert.deepEqual(bleu.counts, [0, 0, 0, 0]);
  }
  assert.equal(corpusBleu(['this is a cat'], [['okay thanks']]).score, 0);
});

test('closest reference length prefers the shorter on a tie (sacrebleu bleu.py _get_closest_ref_len)', () => {
  assert.equal(closestRefLength(5, [3, 7]), 3);
  assert.equal(closestRefLength(5, [7, 3]), 3);
  assert.equal(closestRefLength(5, [7, 4, 6]), 4);
  assert.equal(closestRefLength(0, [0, 3]), 0);
  // With the longer reference BP would be exp(1 - 7/5) (sacrebleu 2.6.0: 67.032...).
  const tie = corpusBleu(['a b c d e'], [['a b c', 'a b c d e f g']]);
  assert.equal(tie.refLen, 3);
  assert.equal(tie.bp, 1);
  assertClose(corpusBleu(['a b c d e'], [['a b c d e f g']]).score, 67.03200460356396, 1e-9);
});

test('multi-reference clipping takes the maximum count over references (sacrebleu _extract_reference_info; sacrebleu 2.6.0)', () => {
  // 'the' occurs 3 times in the hypothesis, once in the first reference, twice in the second: clipped at 2, not 3.
  const bleu = corpusBleu(['the cat the dog the end'], [['the cat sat', 'the dog ran the race']]);
  assert.deepEqual(bleu.counts, [4, 2, 0, 0]);
  assert.deepEqual(bleu.totals, [6, 5, 4, 3]);
  assert.equal(bleu.refLen, 5);
  assertClose(bleu.score, 22.957488466614336, 1e-9);
});

test('add-k reports smoothed counts, as sacrebleu does (sacrebleu 2.6.0)', () => {
  const bleu = sentenceBleu(SYS_98, [REF_98], { smoothMethod: 'add-k', smoothValue: 2 });
  assert.deepEqual(bleu.counts, [5, 4, 2, 2]);
  assert.deepEqual(bleu.totals, [14, 15, 14, 13]);
});

test('lowercase option folds case before matching', () => {
  assert.ok(corpusBleu(['THE DOG bit the man.'], [['The dog bit the man.']]).score < 100);
  assertClose(corpusBleu(['THE DOG bit the man.'], [['The dog bit the man.']], { lowercase: true }).score, 100, 1e-9);
});

test('bad input is rejected with InvalidArgument naming the field', () => {
  assert.throws(() => corpusBleu([], []), InvalidArgument);
  assert.throws(() => corpusBleu(['a'], []), /`references` must have one entry per hypothesis \(1\), got 0/);
  assert.throws(() => corpusBleu(['a', 'b'], [['a'], []]), /`references\[1\]` must hold at least one reference/);
  assert.throws(() => corpusBleu(['a'], [['a']], { maxNgramOrder: 0 }), /`maxNgramOrder`/);
});
