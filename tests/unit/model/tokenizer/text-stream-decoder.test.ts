import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../../../src/common/rng.js';
import { loadTokenizer } from '../../../../src/model/tokenizer/load-tokenizer.js';
import { TextStreamDecoder } from '../../../../src/model/tokenizer/text-stream-decoder.js';
import type { Tokenizer } from '../../../../src/model/tokenizer/tokenizer.js';
import { MIXED_TEXT, byteTokenizer, gpt2Folder } from './fixtures.js';

function stream(tok: Tokenizer, ids: readonly number[]): string[] {
  const decoder = new TextStreamDecoder(tok);
  return [...ids.map((id) => decoder.push(id)), decoder.flush()];
}

test('deltas of multibyte characters split across tokens join up to decode()', () => {
  const tok = byteTokenizer();
  const ids = tok.encode(MIXED_TEXT);
  const deltas = stream(tok, ids);
  assert.equal(deltas.join(''), tok.decode(ids));
  assert.equal(deltas.join(''), MIXED_TEXT);
  for (const delta of deltas) assert.ok(!delta.includes('\uFFFD'), `delta ${JSON.stringify(delta)}`);
  assert.ok(deltas.filter((d) => d === '').length > 0, 'some bytes were held back');
});

test('an unfinished character is held back until its last byte', () => {
  const tok = byteTokenizer();
  const decoder = new TextStreamDecoder(tok);
  const [a, b, c, d] = tok.encode('😀');
  assert.equal(decoder.push(a!), '');
  assert.equal(decoder.push(b!), '');
  assert.equal(decoder.push(c!), '');
  assert.equal(decoder.push(d!), '😀');
  assert.equal(decoder.push(tok.eosId), '');
  assert.equal(decoder.flush(), '');
});

test('flush turns a dangling sequence into U+FFFD and resets', () => {
  const tok = byteTokenizer();
  const decoder = new TextStreamDecoder(tok);
  const [first] = tok.encode('中');
  assert.equal(decoder.push(first!), '');
  assert.equal(decoder.flush(), '\uFFFD');
  assert.equal(decoder.push(tok.encode('x')[0]!), 'x');
  assert.equal(decoder.flush(), '');
});

test('random byte streams, valid or not, stream to exactly decode()', () => {
  const tok = byteTokenizer();
  const rng = new Rng(7);
  const pieces = ['a', 'é', '中', '😀', '\uFFFD'].map((s) => tok.encode(s));
  for (let trial = 0; trial < 300; trial++) {
    const ids: number[] = [];
    for (let i = 0; i < 24; i++) {
      // Half raw random bytes (mostly invalid UTF-8), half whole or cut characters.
      if (rng.next() < 0.5) ids.push(rng.int(256));
      else ids.push(...pieces[rng.int(pieces.length)]!.slice(0, 1 + rng.int(4)));
    }
    assert.equal(stream(tok, ids).join(''), tok.decode(ids), `ids ${JSON.stringify(ids)}`);
  }
});

test('GPT-2 tokens stream to decode() with no U+FFFD', async () => {
  const tok = await loadTokenizer(await gpt2Folder());
  const ids = tok.encode(MIXED_TEXT);
  const deltas = stream(tok, ids);
  assert.equal(deltas.join(''), MIXED_TEXT);
  for (const delta of deltas) assert.ok(!delta.includes('\uFFFD'));
});
