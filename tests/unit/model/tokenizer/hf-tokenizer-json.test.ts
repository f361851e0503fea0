import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgument } from '../../../../src/common/errors.js';
import { HfTokenizer } from '../../../../src/model/tokenizer/hf-tokenizer.js';
import { loadTokenizer } from '../../../../src/model/tokenizer/load-tokenizer.js';
import { modelFolder, rustTokenizer, tinyTokenizerJson } from './hf-fixtures.js';

const CONFIG = { bos_token: '<s>', eos_token: '</s>', add_bos_token: true };

function rejectsNaming(file: string, what: RegExp) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof InvalidArgument, `expected InvalidArgument, got ${String(e)}`);
    assert.ok(e.message.includes(file), `${JSON.stringify(e.message)} names ${file}`);
    assert.match(e.message, what);
    return true;
  };
}

test('the small tokenizer loads and matches the Rust tokenizers', async () => {
  const json = tinyTokenizerJson();
  const tok = await loadTokenizer(await modelFolder(undefined, { 'tokenizer.json': json, 'tokenizer_config.json': CONFIG }));
  assert.ok(tok instanceof HfTokenizer);
  const rust = rustTokenizer(json);
  for (const text of ['abc abc', ' ab  c', 'a😀b', '<s>ab</s>', '']) {
    const ref = await rust.encode(text, null, { addSpecialTokens: false });
    assert.deepEqual(tok.encode(text, { parseSpecialTokens: true }), ref.getIds(), JSON.stringify(text));
    assert.equal(tok.decode(ref.getIds()), await rust.decode(ref.getIds(), true));
  }
  assert.deepEqual(tok.encode('abc', { addSpecialTokens: true }), [1, 267]);
});

test('decoders: Metaspace drops the first token\'s ▁, Strip cuts as configured, as in the Rust tokenizers', async () => {
  const decoders = [
    { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
    { type: 'Metaspace', replacement: '▁', prepend_scheme: 'never', split: false },
    { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 2, stop: 1 }] },
  ];
  // ▁ = 259, a = 260, ▁a = 263, <0x41> = 68.
  // (Not a sequence of spaces alone: the Rust Strip decoder panics when start and stop overlap.)
  const sequences = [[259, 259, 263], [263, 259], [260, 259, 259], [1, 259, 263, 2], [68, 263], [263]];
  for (const decoder of decoders) {
    const json = { ...tinyTokenizerJson(), decoder };
    const tok = await loadTokenizer(await modelFolder(undefined, { 'tokenizer.json': json, 'tokenizer_config.json': CONFIG }));
    const rust = rustTokenizer(json);
    for (const ids of sequences) {
      assert.equal(tok.decode(ids), await rust.decode(ids, true), `${JSON.stringify(decoder)} ${ids.join()}`);
    }
  }
});

test('a malformed or unsupported tokenizer.json is rejected, naming the file and the field', async () => {
  const variants: Array<[string, (json: any) => void, RegExp]> = [
    ['not a BPE', (j) => (j.model.type = 'Unigram'), /`model\.type` must be "BPE", got "Unigram"/],
    ['no vocab', (j) => delete j.model.vocab, /`model\.vocab`/],
    ['a bad id', (j) => (j.model.vocab['a'] = -1), /`model\.vocab` id of "a"/],
    ['two tokens, one id', (j) => (j.model.vocab['zz'] = 5), /id 5 is given to both/],
    ['a bad merge', (j) => (j.model.merges = ['▁ a', 'abc']), /`model\.merges\[1\]`/],
    ['BPE dropout', (j) => (j.model.dropout = 0.1), /`model\.dropout`/],
    ['an unknown unk_token', (j) => (j.model.unk_token = '<unknown>'), /`model\.unk_token` "<unknown>" is not in model\.vocab/],
    [
      'no unk_token, no byte fallback',
      (j) => Object.assign(j.model, { unk_token: null, byte_fallback: false }),
      /no `unk_token`, no `byte_fallback` and no ByteLevel pre-tokenizer/,
    ],
    [
      'ByteLevel without all 256 byte tokens',
      (j) => {
        Object.assign(j.model, { unk_token: null, byte_fallback: false });
        j.pre_tokenizer = { type: 'Sequence', pretokenizers: [{ type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true }] };
      },
      /`model\.vocab` lacks the ByteLevel token "Ā" \(byte 0x00\)/,
    ],
    ['an added token without id', (j) => delete j.added_tokens[1].id, /`added_tokens\[1\]`/],
    ['an added token against the vocab', (j) => (j.added_tokens[1].id = 7), /`added_tokens\[1\]` gives "<s>" id 7, but model\.vocab has 1/],
    ['single_word', (j) => (j.added_tokens[2].single_word = true), /`added_tokens\[2\]\.single_word`/],
    ['a splitting Metaspace', (j) => (j.pre_tokenizer.split = true), /`pre_tokenizer\.split` must be false/],
    ['Metaspace without replacement', (j) => delete j.pre_tokenizer.replacement, /`pre_tokenizer\.replacement` must be one character/],
    [
      'a merging Split in a Sequence',
      (j) => (j.pre_tokenizer = { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { String: ' ' }, behavior: 'MergedWithPrevious', invert: false }] }),
      /`pre_tokenizer\.pretokenizers\[0\]\.behavior`/,
    ],
    ['an unknown pre-tokenizer', (j) => (j.pre_tokenizer = { type: 'Nonesuch' }), /cannot build the tokenizer: .*Nonesuch/],
    [
      'a regex that does not compile',
      (j) => (j.pre_tokenizer = { type: 'Split', pattern: { Regex: '[a-' }, behavior: 'Isolated', invert: false }),
      /cannot build the tokenizer: .*character class/,
    ],
    ['no decoder', (j) => (j.decoder = null), /`decoder` must be an object/],
    ['a WordPiece decoder', (j) => (j.decoder = { type: 'WordPiece', prefix: '##' }), /`decoder\.type` "WordPiece" is not supported/],
    ['Strip before Fuse', (j) => j.decoder.decoders.reverse(), /`decoder\.decoders\[0\]` \(Strip\)/],
    ['a regex Replace', (j) => (j.decoder.decoders[0].pattern = { Regex: '▁' }), /`decoder\.decoders\[0\]` \(Replace\)/],
    [
      'a post-processor entry of neither kind',
      (j) => (j.post_processor = { type: 'TemplateProcessing', single: [{ Nonesuch: {} }], pair: [], special_tokens: {} }),
      /`post_processor\.single`/,
    ],
  ];
  for (const [name, change, what] of variants) {
    const json = tinyTokenizerJson();
    change(json);
    const dir = await modelFolder(undefined, { 'tokenizer.json': json, 'tokenizer_config.json': CONFIG });
    await assert.rejects(loadTokenizer(dir), rejectsNaming('tokenizer.json', what), name);
  }
});

test('tokenizer_config.json and generation_config.json errors name the file and the field', async () => {
  const files = (extra: Record<string, string | object>) => modelFolder(undefined, { 'tokenizer.json': tinyTokenizerJson(), ...extra });
  const cases: Array<[string, Record<string, string | object>, string, RegExp]> = [
    ['no EOS anywhere', {}, 'tokenizer.json', /no end-of-sequence token/],
    ['malformed JSON', { 'tokenizer_config.json': '{"eos_token": ' }, 'tokenizer_config.json', /malformed JSON/],
    ['an unknown EOS', { 'tokenizer_config.json': { eos_token: '<eos>' } }, 'tokenizer_config.json', /`eos_token`: "<eos>" is not in the vocabulary/],
    ['a number for a token', { 'tokenizer_config.json': { eos_token: 2 } }, 'tokenizer_config.json', /`eos_token` must be a token string/],
    ['a string for a flag', { 'tokenizer_config.json': { ...CONFIG, add_bos_token: 'yes' } }, 'tokenizer_config.json', /`add_bos_token` must be true or false/],
    ['BOS added but unnamed', { 'tokenizer_config.json': { eos_token: '</s>', add_bos_token: true } }, 'tokenizer_config.json', /`add_bos_token` is true but there is no `bos_token`/],
    ['an EOS id that is text', { 'tokenizer_config.json': CONFIG, 'generation_config.json': { eos_token_id: '2' } }, 'generation_config.json', /`eos_token_id` must be a token id/],
    ['an EOS id past the vocabulary', { 'tokenizer_config.json': CONFIG, 'generation_config.json': { eos_token_id: [2, 9999] } }, 'generation_config.json', /`eos_token_id` 9999 is not an id/],
    ['a list of nothing', { 'tokenizer_config.json': CONFIG, 'generation_config.json': { eos_token_id: [] } }, 'generation_config.json', /non-empty list/],
  ];
  for (const [name, extra, file, what] of cases) {
    await assert.rejects(loadTokenizer(await files(extra)), rejectsNaming(file, what), name);
  }
  // EOS from generation_config.json alone, and AddedToken objects in tokenizer_config.json.
  const fromGeneration = (await loadTokenizer(await files({ 'generation_config.json': { eos_token_id: 2 } }))) as HfTokenizer;
  assert.deepEqual([fromGeneration.eosId, fromGeneration.bosId, fromGeneration.addBosToken], [2, undefined, false]);
  const objects = (await loadTokenizer(
    await files({ 'tokenizer_config.json': { bos_token: { __type: 'AddedToken', content: '<s>' }, eos_token: { __type: 'AddedToken', content: '</s>' } } }),
  )) as HfTokenizer;
  assert.deepEqual([objects.eosId, objects.bosId], [2, 1]);
});
