import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgument } from '../../../../src/common/errors.js';
import { trainByteLevelBpe } from '../../../../src/model/tokenizer/bpe-trainer.js';
import { loadTokenizer, saveTokenizer } from '../../../../src/model/tokenizer/load-tokenizer.js';
import { MIXED_TEXT, byteTokenizer, mobyDick } from './fixtures.js';

const training = mobyDick(1, 20);

test('training reaches the vocab size, <|endoftext|> last, bytes first in GPT-2 order', async () => {
  const tok = trainByteLevelBpe(await training, 1000);
  assert.equal(tok.vocabSize, 1000);
  assert.equal(tok.eosId, 999);
  assert.equal(tok.getMerges().length, 1000 - 257);
  const bytes = byteTokenizer();
  for (let id = 0; id < 256; id++) assert.equal(tok.idToToken(id), bytes.idToToken(id));
});

test('training is deterministic', async () => {
  const texts = await training;
  const a = trainByteLevelBpe(texts, 700);
  const b = trainByteLevelBpe([...texts], 700);
  assert.deepEqual(a.getMerges(), b.getMerges());
  assert.deepEqual([...a.getVocab()], [...b.getVocab()]);
});

test('the trained tokenizer round-trips and compresses its training text', async () => {
  const texts = await training;
  const tok = trainByteLevelBpe(texts, 1000);
  const text = texts.join('\n');
  const ids = tok.encode(text);
  assert.equal(tok.decode(ids), text);
  assert.ok(ids.length < Buffer.byteLength(text) / 2.5, `${ids.length} tokens for ${Buffer.byteLength(text)} bytes`);
  // Text unlike the training data still round-trips (bytes are always in the vocab).
  assert.equal(tok.decode(tok.encode(MIXED_TEXT)), MIXED_TEXT);
  const [heldOut] = await mobyDick(100, 100);
  assert.ok(tok.encode(heldOut!).length < Buffer.byteLength(heldOut!) / 2);
});

test('a trained tokenizer survives saveTokenizer + loadTokenizer', async () => {
  const texts = await training;
  const tok = trainByteLevelBpe(texts, 600);
  const dir = await mkdtemp(join(tmpdir(), 'gentune-bpe-'));
  await saveTokenizer(dir, tok);
  const reloaded = await loadTokenizer(dir);
  assert.equal(reloaded.vocabSize, 600);
  assert.deepEqual(reloaded.encode(texts[0]!), tok.encode(texts[0]!));
});

test('training stops early when the text runs out of pairs', () => {
  const tok = trainByteLevelBpe(['ab ab abc'], 5000);
  assert.ok(tok.vocabSize < 5000);
  assert.deepEqual(tok.getMerges(), [['a', 'b'], ['Ġ', 'ab'], ['Ġab', 'c']].slice(0, tok.getMerges().length));
  assert.equal(tok.decode(tok.encode('ab abc')), 'ab abc');
});

test('an impossible vocab size is rejected', () => {
  assert.throws(() => trainByteLevelBpe(['x'], 256), (e: unknown) => e instanceof InvalidArgument && /vocabSize/.test(e.message));
  assert.throws(() => trainByteLevelBpe(['x'], 1000.5), InvalidArgument);
});
