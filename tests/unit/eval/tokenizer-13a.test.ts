// Expected tokenizations were produced by sacrebleu 2.6.0's Tokenizer13a
// (sacrebleu/tokenizers/tokenizer_13a.py, tokenizer_re.py); sacrebleu's tests
// exercise it only through BLEU scores (see bleu.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tokenize13a, tokenizeRegexp } from '../../../src/eval/tokenizer-13a.js';
import { pyRstrip, pySplit } from '../../../src/eval/python-text.js';

test('13a splits punctuation but keeps apostrophes, decimals and thousands', () => {
  assert.equal(tokenize13a("It wasn't surprising."), "It wasn't surprising .");
  assert.equal(
    tokenize13a('Pi is 3.14, or 1,000/318.3; pages 10-20.'),
    'Pi is 3.14 , or 1,000 / 318.3 ; pages 10 - 20 .',
  );
  assert.equal(tokenize13a('e.g. U.S.A.'), 'e . g . U . S . A .');
  assert.equal(
    tokenize13a('(x+y)=z? {a}[b]|c~d^e_f`g\\h'),
    '( x + y ) = z ? { a } [ b ] | c ~ d ^ e _ f ` g \\ h',
  );
});

test('13a drops <skipped>, joins hyphenated line breaks and unescapes entities once', () => {
  assert.equal(tokenize13a('&quot;Hi&quot; &amp;amp; <skipped>co-\noperate\nnow'), '" Hi " & amp ; cooperate now');
});

test('13a splits on Python whitespace, not JavaScript whitespace', () => {
  // U+00A0 and U+001C are whitespace to Python's str.split(); U+FEFF is not.
  assert.equal(tokenize13a('a\u00a0b\u001cc\ufeffd'), 'a b c\ufeffd');
  assert.deepEqual(pySplit(' a\u0085b\u3000c\ufeff '), ['a', 'b', 'c\ufeff']);
  assert.equal(pyRstrip('x \u001f\u0085\n'), 'x');
  assert.equal(pyRstrip('x\ufeff'), 'x\ufeff');
});

test('13a leaves non-ASCII letters and astral characters alone', () => {
  assert.equal(tokenize13a('Ünïcödé “quoted”, 東京😀.'), 'Ünïcödé “quoted” , 東京😀 .');
  assert.equal(tokenizeRegexp(' 😀, '), '😀 ,');
});
