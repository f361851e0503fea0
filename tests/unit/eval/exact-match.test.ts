import { test } from 'node:test';
import assert from 'node:assert/strict';
import { corpusExactMatch, exactMatch, normalizeForExactMatch } from '../../../src/eval/exact-match.js';
import { InvalidArgument } from '../../../src/common/errors.js';

test('normalisation trims and collapses whitespace, keeps case and punctuation by default', () => {
  assert.equal(normalizeForExactMatch('  The\tcat \n\n sat\u00a0down.  '), 'The cat sat down.');
  assert.equal(exactMatch('Paris', ['Paris.']), 0);
  assert.equal(exactMatch('paris', ['Paris']), 0);
  assert.equal(exactMatch(' Paris\n', ['Paris']), 1);
});

test('case folding maps both sides through upper then lower case', () => {
  assert.equal(exactMatch('paris', ['PARIS'], { caseFold: true }), 1);
  assert.equal(exactMatch('Straße', ['STRASSE'], { caseFold: true }), 1);
  assert.equal(exactMatch('ΣΊΣΥΦΟΣ', ['σίσυφος'], { caseFold: true }), 1);
  assert.equal(exactMatch('Straße', ['STRASSE']), 0);
});

test('canonically equivalent unicode spellings match (NFC)', () => {
  assert.equal(exactMatch('cafe\u0301', ['caf\u00e9']), 1);
  assert.equal(exactMatch('café', ['cafe']), 0);
});

test('any reference may match; the corpus score is the fraction matched', () => {
  const result = corpusExactMatch(['4', 'blue', '', 'x'], [['four', '4'], ['red'], [''], ['X']]);
  assert.deepEqual(result.perExample, [1, 0, 1, 0]);
  assert.equal(result.score, 0.5);
  assert.throws(() => corpusExactMatch([], []), InvalidArgument);
  assert.throws(() => corpusExactMatch(['a'], [[]]), /`references\[0\]` must hold at least one reference/);
});
