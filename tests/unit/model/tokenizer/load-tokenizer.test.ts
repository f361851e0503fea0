import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgument } from '../../../../src/common/errors.js';
import { loadTokenizer, saveTokenizer } from '../../../../src/model/tokenizer/load-tokenizer.js';
import { MIXED_TEXT, byteTokenizer } from './fixtures.js';

/** A fresh folder holding the given files (name -> contents). */
async function folder(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gentune-tok-'));
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  return dir;
}

/** The byte tokenizer saved with saveTokenizer: vocab.json, merges.txt, tokenizer.json. */
async function savedFiles(): Promise<Record<string, string>> {
  const dir = await folder({});
  await saveTokenizer(dir, byteTokenizer());
  const files: Record<string, string> = {};
  for (const name of ['vocab.json', 'merges.txt', 'tokenizer.json']) files[name] = await readFile(join(dir, name), 'utf8');
  return files;
}

function rejectsNaming(file: RegExp) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof InvalidArgument, `expected InvalidArgument, got ${String(e)}`);
    assert.match(e.message, file);
    return true;
  };
}

test('a folder without tokenizer files is rejected, naming what is expected', async () => {
  await assert.rejects(loadTokenizer(await folder({})), rejectsNaming(/tokenizer\.json.*vocab\.json.*merges\.txt/));
  await assert.rejects(loadTokenizer(join(tmpdir(), 'gentune-no-such-folder')), rejectsNaming(/tokenizer\.json/));
  const { 'vocab.json': vocab, 'merges.txt': merges } = await savedFiles();
  await assert.rejects(loadTokenizer(await folder({ 'vocab.json': vocab! })), rejectsNaming(/merges\.txt/));
  await assert.rejects(loadTokenizer(await folder({ 'merges.txt': merges! })), rejectsNaming(/vocab\.json/));
});

test('malformed JSON is rejected, naming the file', async () => {
  const { 'merges.txt': merges, 'tokenizer.json': tokenizer } = await savedFiles();
  const withoutVocab = JSON.parse(tokenizer!);
  delete withoutVocab.model.vocab;
  await assert.rejects(
    loadTokenizer(await folder({ 'vocab.json': '{"a": 0,', 'merges.txt': merges! })),
    rejectsNaming(/vocab\.json: malformed JSON/),
  );
  await assert.rejects(loadTokenizer(await folder({ 'tokenizer.json': 'not json' })), rejectsNaming(/tokenizer\.json: malformed JSON/));
  await assert.rejects(loadTokenizer(await folder({ 'vocab.json': '[1, 2]', 'merges.txt': merges! })), rejectsNaming(/vocab\.json/));
  await assert.rejects(
    loadTokenizer(await folder({ 'tokenizer.json': JSON.stringify(withoutVocab) })),
    rejectsNaming(/tokenizer\.json.*model\.vocab/),
  );
});

test('a vocabulary without <|endoftext|> is rejected, naming the file', async () => {
  const { 'vocab.json': vocab, 'merges.txt': merges, 'tokenizer.json': tokenizer } = await savedFiles();
  const withoutEos = JSON.stringify(Object.fromEntries(Object.entries(JSON.parse(vocab!)).filter(([t]) => t !== '<|endoftext|>')));
  await assert.rejects(
    loadTokenizer(await folder({ 'vocab.json': withoutEos, 'merges.txt': merges! })),
    rejectsNaming(/vocab\.json.*<\|endoftext\|>/),
  );
  const json = JSON.parse(tokenizer!);
  json.added_tokens = [];
  json.model.vocab = JSON.parse(withoutEos);
  await assert.rejects(
    loadTokenizer(await folder({ 'tokenizer.json': JSON.stringify(json) })),
    rejectsNaming(/tokenizer\.json.*<\|endoftext\|>/),
  );
});

test('bad merges are rejected with their line or index', async () => {
  const { 'vocab.json': vocab, 'tokenizer.json': tokenizer } = await savedFiles();
  await assert.rejects(
    loadTokenizer(await folder({ 'vocab.json': vocab!, 'merges.txt': '#version: 0.2\nĠ t\nonlyone\n' })),
    rejectsNaming(/merges\.txt line 3/),
  );
  // "Ġt" is not in the byte tokenizer's vocabulary.
  await assert.rejects(
    loadTokenizer(await folder({ 'vocab.json': vocab!, 'merges.txt': 'Ġ t\n' })),
    rejectsNaming(/vocab\.json.*merge 1.*"Ġt"/),
  );
  const json = JSON.parse(tokenizer!);
  json.model.merges = [['a', 'b', 'c']];
  await assert.rejects(loadTokenizer(await folder({ 'tokenizer.json': JSON.stringify(json) })), rejectsNaming(/model\.merges\[0\]/));
});

test('tokenizer.json: merges as pairs, <|endoftext|> only in added_tokens', async () => {
  const { 'tokenizer.json': tokenizer } = await savedFiles();
  const json = JSON.parse(tokenizer!);
  delete json.model.vocab['<|endoftext|>'];
  json.model.vocab['Ġt'] = 257;
  json.model.merges = [['Ġ', 't']];
  json.added_tokens[0].id = 258;
  const tok = await loadTokenizer(await folder({ 'tokenizer.json': JSON.stringify(json) }));
  assert.equal(tok.vocabSize, 259);
  assert.equal(tok.eosId, 258);
  assert.deepEqual(tok.encode(' t'), [257]);
  assert.equal(tok.decode(tok.encode(MIXED_TEXT)), MIXED_TEXT);
});

test('tokenizer.json that is not a GPT-2 byte-level BPE is rejected', async () => {
  const { 'tokenizer.json': tokenizer } = await savedFiles();
  const variants: Array<[(json: any) => void, RegExp]> = [
    [(j) => (j.model.type = 'WordPiece'), /model\.type/],
    [(j) => (j.pre_tokenizer = { type: 'Metaspace' }), /pre_tokenizer\.type/],
    [(j) => (j.pre_tokenizer.add_prefix_space = true), /add_prefix_space/],
    [(j) => (j.normalizer = { type: 'NFC' }), /normalizer/],
    [(j) => (j.model.continuing_subword_prefix = '##'), /continuing_subword_prefix/],
  ];
  for (const [change, field] of variants) {
    const json = JSON.parse(tokenizer!);
    change(json);
    await assert.rejects(loadTokenizer(await folder({ 'tokenizer.json': JSON.stringify(json) })), rejectsNaming(field));
  }
});

test('merges.txt without a #version line and with CRLF endings loads', async () => {
  const { 'vocab.json': vocab } = await savedFiles();
  const json = JSON.parse(vocab!);
  json['Ġt'] = 257;
  const tok = await loadTokenizer(await folder({ 'vocab.json': JSON.stringify(json), 'merges.txt': 'Ġ t\r\n' }));
  assert.deepEqual(tok.encode(' t'), [257]);
  assert.equal(tok.eosId, 256);
});

test('tokenizer.json wins over vocab.json + merges.txt', async () => {
  const files = await savedFiles();
  const dir = await folder({ ...files, 'vocab.json': 'broken' });
  assert.equal((await loadTokenizer(dir)).vocabSize, 257);
  await rm(join(dir, 'tokenizer.json'));
  await assert.rejects(loadTokenizer(dir), rejectsNaming(/vocab\.json/));
});
