import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { encode as r50kEncode } from 'gpt-tokenizer/encoding/r50k_base';
import { InvalidArgument } from '../../../../src/common/errors.js';
import { ByteLevelBpe } from '../../../../src/model/tokenizer/byte-level-bpe.js';
import { loadByteLevelBpe, saveTokenizer } from '../../../../src/model/tokenizer/load-tokenizer.js';
import { MIXED_TEXT, byteTokenizer, gpt2Folder, mobyDick } from './fixtures.js';
import { rustTokenizer } from './hf-fixtures.js';

const gpt2 = gpt2Folder().then(loadByteLevelBpe);

test('GPT-2 vocab.json + merges.txt give the same ids as tiktoken r50k_base', async () => {
  const tok = await gpt2;
  assert.equal(tok.vocabSize, 50257);
  assert.equal(tok.eosId, 50256);
  assert.deepEqual(tok.encode(MIXED_TEXT), r50kEncode(MIXED_TEXT));
  const [chapter] = await mobyDick(1, 1);
  assert.deepEqual(tok.encode(chapter!), r50kEncode(chapter!));
});

test('long words (heap merge path) match r50k_base', async () => {
  const tok = await gpt2;
  for (const piece of ['我们的世界是一个美丽的地方', 'abcdefghij', 'aaaa', '!?.,', '👩‍👩‍👧‍👦', ' \t']) {
    for (const length of [40, 65, 200, 700]) {
      const text = `x ${piece.repeat(Math.ceil(length / piece.length))} y`;
      assert.deepEqual(tok.encode(text), r50kEncode(text), `${JSON.stringify(piece)} x ${length}`);
    }
  }
});

test('the GPT-2 tokenizer saved as tokenizer.json loads back with the same ids', async () => {
  const tok = await gpt2;
  const dir = await gpt2Folder();
  await saveTokenizer(dir, tok);
  await rm(join(dir, 'vocab.json'));
  await rm(join(dir, 'merges.txt'));
  const reloaded = await loadByteLevelBpe(dir);
  assert.equal(reloaded.vocabSize, 50257);
  assert.equal(reloaded.eosId, 50256);
  assert.deepEqual(reloaded.encode(MIXED_TEXT), r50kEncode(MIXED_TEXT));
  assert.deepEqual(reloaded.getMerges(), tok.getMerges());
});

test('<|endoftext|> in the text is ordinary text', async () => {
  const tok = await gpt2;
  const text = 'end<|endoftext|>start';
  const ids = tok.encode(text);
  assert.deepEqual(ids, r50kEncode(text, { disallowedSpecial: new Set() }));
  assert.ok(!ids.includes(tok.eosId));
  assert.equal(tok.decode(ids), text);
});

test('parseSpecialTokens: <|endoftext|> in the text becomes the token, as in the Rust tokenizers', async () => {
  const tok = await gpt2;
  const dir = await gpt2Folder();
  await saveTokenizer(dir, tok);
  const rust = rustTokenizer(join(dir, 'tokenizer.json'));
  for (const text of ['end<|endoftext|>start', '<|endoftext|><|endoftext|>', ' <|endoftext|> x', `${MIXED_TEXT}<|endoftext|>\n`, '<|endoftext', '']) {
    const ref = (await rust.encode(text, null, { addSpecialTokens: false })).getIds();
    assert.deepEqual(tok.encode(text, { parseSpecialTokens: true }), ref, JSON.stringify(text));
  }
  assert.deepEqual(tok.encode('a<|endoftext|>b', { parseSpecialTokens: true }), [...tok.encode('a'), tok.eosId, ...tok.encode('b')]);
});

test('decode(encode(x)) === x', async () => {
  const tok = await gpt2;
  for (const text of [MIXED_TEXT, '', ' ', '\uFEFFbyte order mark first', '\u0000\u0001 controls \u007f']) {
    assert.equal(tok.decode(tok.encode(text)), text);
    assert.equal(byteTokenizer().decode(byteTokenizer().encode(text)), text);
  }
});

test('decode leaves special tokens out, replaces invalid UTF-8 and rejects unknown ids', async () => {
  const tok = await gpt2;
  const hello = tok.encode('hello');
  assert.equal(tok.decode([...hello, tok.eosId, ...hello]), 'hellohello');
  assert.equal(tok.tokenBytes(tok.eosId).length, 0);
  const bytes = byteTokenizer();
  const firstByteOfEmoji = bytes.encode('😀')[0]!;
  assert.equal(bytes.decode([firstByteOfEmoji, ...bytes.encode('a')]), '\uFFFDa');
  assert.throws(() => tok.decode([1, 50257]), (e: unknown) => e instanceof InvalidArgument && /ids\[1\]/.test(e.message));
  assert.throws(() => tok.tokenBytes(-1), InvalidArgument);
});

test('tokenBytes returns a copy of the token bytes', async () => {
  const tok = await gpt2;
  const [the] = tok.encode(' the');
  assert.deepEqual([...tok.tokenBytes(the!)], [0x20, 0x74, 0x68, 0x65]);
  tok.tokenBytes(the!).fill(0);
  assert.equal(tok.decode([the!]), ' the');
});

test('the byte-level tokenizer without merges encodes bytes one token each', () => {
  const tok = byteTokenizer();
  assert.equal(tok.vocabSize, 257);
  assert.equal(tok.eosId, 256);
  const text = 'héllo 😀';
  const ids = tok.encode(text);
  assert.equal(ids.length, Buffer.byteLength(text));
  assert.deepEqual(ids.map((id) => tok.tokenBytes(id)[0]), [...Buffer.from(text)]);
  assert.equal(tok.idToToken(ids[0]!), 'h');
});

test('a small word cache still encodes correctly', async () => {
  const tok = await gpt2;
  const small = new ByteLevelBpe({ vocab: tok.getVocab(), merges: tok.getMerges(), cacheSize: 3 });
  assert.deepEqual(small.encode(MIXED_TEXT), r50kEncode(MIXED_TEXT));
  assert.deepEqual(small.encode(MIXED_TEXT), r50kEncode(MIXED_TEXT));
});

test('encodes 1 MB of text well within a second or two', async (t) => {
  const tok = await gpt2;
  let text = (await mobyDick(1, 135)).join('\n');
  text = text.slice(0, 1_000_000);
  const started = performance.now();
  const ids = tok.encode(text);
  const seconds = (performance.now() - started) / 1000;
  const mbPerSecond = Buffer.byteLength(text) / 1e6 / seconds;
  t.diagnostic(`GPT-2 encode: ${mbPerSecond.toFixed(1)} MB/s (${ids.length} tokens in ${seconds.toFixed(3)} s)`);
  assert.ok(seconds < 3, `took ${seconds} s`);
});
