import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { HfTokenizer } from '../../../../src/model/tokenizer/hf-tokenizer.js';
import { loadTokenizer } from '../../../../src/model/tokenizer/load-tokenizer.js';
import { TextStreamDecoder } from '../../../../src/model/tokenizer/text-stream-decoder.js';
import {
  HF_MODELS,
  type HfModelName,
  bundledTokenizer,
  mixedLines,
  modelFolder,
  rustReference,
  rustTokenizer,
  tinyTokenizerJson,
  tokenizerJson,
} from './hf-fixtures.js';

interface Case {
  name: string;
  model: HfModelName;
  /** Changes to the bundled tokenizer.json (a variant the packages do not ship). */
  edit?: (json: Record<string, any>) => void;
  /** The text the tokens' bytes spell, for a lossless tokenizer: its normalizer's output, in plain characters. */
  spelled: (text: string) => string;
  /** Added tokens of this vocabulary (special or not) written into the text. */
  specials: string[];
  /** Lines of prose and of synthetic text (default 1000 + 1500). */
  lines?: [number, number];
}

const CASES: Case[] = [
  {
    name: 'Qwen3 (NFC, Split + ByteLevel)',
    model: 'qwen3',
    spelled: (t) => t.normalize('NFC'),
    specials: ['<|im_start|>', '<|im_end|>', '<|endoftext|>', '<think>', '</think>', '<|fim_middle|>', '<tool_call>'],
  },
  {
    name: 'Llama 3 (Split + ByteLevel, ignore_merges)',
    model: 'llama3',
    spelled: (t) => t,
    specials: ['<|begin_of_text|>', '<|eot_id|>', '<|start_header_id|>', '<|end_header_id|>', '<|reserved_special_token_5|>'],
  },
  {
    name: 'Llama 2 (SentencePiece BPE: Prepend/Replace normalizer, byte fallback)',
    model: 'llama2',
    // The normalizer prepends ▁ (to a non-empty text) and makes spaces ▁; ▁ stands for a space.
    spelled: (t) => (t === '' ? '' : ` ${t.replaceAll('▁', ' ')}`),
    specials: ['<s>', '</s>', '<unk>'],
  },
  {
    name: 'Llama 2 with a Metaspace pre-tokenizer (transformers legacy=false)',
    model: 'llama2',
    edit: (json) => {
      json.normalizer = null;
      json.pre_tokenizer = { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false };
    },
    spelled: (t) => {
      const spaced = t.replaceAll('▁', ' ');
      return spaced === '' || spaced.startsWith(' ') ? spaced : ` ${spaced}`;
    },
    specials: ['<s>', '</s>', '<unk>'],
    // A variant of the file above: a smaller sample.
    lines: [300, 500],
  },
];

const utf8 = new TextEncoder();

function concatBytes(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Collects mismatches; `assert()` fails with the count and the first few. */
class Mismatches {
  private readonly items: string[] = [];
  count = 0;
  constructor(private readonly what: string) {}
  check(equal: boolean, describe: () => string): void {
    if (equal) return;
    this.count++;
    if (this.items.length < 3) this.items.push(describe());
  }
  assert(total: number): void {
    assert.equal(this.count, 0, `${this.what}: ${this.count} of ${total} lines differ, e.g.\n${this.items.join('\n')}`);
  }
}

for (const c of CASES) {
  test(`${c.name}: ids, decode and token bytes equal the Rust tokenizers on mixed text`, async (t) => {
    let tokenizerFile = join(HF_MODELS[c.model], 'tokenizer.json');
    if (c.edit !== undefined) {
      const json = await tokenizerJson(c.model);
      c.edit(json);
      tokenizerFile = join(await modelFolder(HF_MODELS[c.model], { 'tokenizer.json': json }), 'tokenizer.json');
    }
    const lines = await mixedLines(c.specials, ...(c.lines ?? []));
    const reference = rustReference({ tokenizerFile, lines, withSpecialTokens: 50, randomSequences: 300, seed: 7 });
    const tok = c.edit === undefined ? await bundledTokenizer(c.model) : await loadTokenizer(dirname(tokenizerFile));
    assert.ok(tok instanceof HfTokenizer);
    for (const special of c.specials) assert.notEqual(tok.tokenToId(special), undefined, special);
    const parsedIds = lines.map((line) => tok.encode(line, { parseSpecialTokens: true }));
    const textIds = lines.map((line) => tok.encode(line));
    const ref = await reference;

    const parsed = new Mismatches('ids, special tokens parsed');
    const text = new Mismatches('ids, special tokens as text');
    const decoded = new Mismatches('decode');
    const bytes = new Mismatches('token bytes');
    let roundTrips = 0;
    let refRoundTrips = 0;
    lines.forEach((line, i) => {
      const [mine, theirs] = [parsedIds[i]!, ref.parsed[i]!];
      parsed.check(mine.join() === theirs.join(), () => `${JSON.stringify(line)}\n  got  ${mine.join()}\n  want ${theirs.join()}`);
      const [mineText, theirsText] = [textIds[i]!, ref.text[i]!];
      text.check(mineText.join() === theirsText.join(), () => `${JSON.stringify(line)}\n  got  ${mineText.join()}\n  want ${theirsText.join()}`);
      for (const [ids, want] of [[mine, ref.decodedParsed[i]!], [mineText, ref.decodedText[i]!]] as const) {
        const got = tok.decode(ids);
        decoded.check(got === want, () => `${JSON.stringify(got)} want ${JSON.stringify(want)}`);
      }
      if (tok.decode(mineText) === line) roundTrips++;
      if (ref.decodedText[i] === line) refRoundTrips++;
      const spelled = Buffer.from(concatBytes(mineText.map((id) => tok.tokenBytes(id))));
      bytes.check(spelled.equals(utf8.encode(c.spelled(line))), () => `${JSON.stringify(line)}: ${JSON.stringify(spelled.toString())}`);
    });
    parsed.assert(lines.length);
    text.assert(lines.length);
    decoded.assert(lines.length * 2);
    bytes.assert(lines.length);
    // decode(encode(x)) === x wherever the reference round-trips (implied by the equal
    // decodes above), and that is most lines: those that do not lose a leading space,
    // an un-NFC character or a literal ▁.
    assert.equal(roundTrips, refRoundTrips);
    assert.ok(roundTrips > lines.length * 0.8, `only ${roundTrips} of ${lines.length} lines round-trip`);

    // BOS/EOS as the reference's post-processor adds them (Llama 2: <s>; the others: none).
    ref.withSpecialTokens.forEach((want, i) => {
      assert.deepEqual(tok.encode(lines[i]!, { parseSpecialTokens: true, addSpecialTokens: true }), want);
    });
    // Random sequences of ordinary ids decode as the reference decodes them.
    ref.random.forEach((ids, i) => assert.equal(tok.decode(ids), ref.decodedRandom[i], `ids ${ids.join()}`));
    t.diagnostic(`${lines.length} lines, 0 mismatches; ${roundTrips} round-trip, as in the reference`);
  });
}

test('token bytes stream to the text: TextStreamDecoder over Llama 3 and Llama 2 ids', async () => {
  const line = 'Emoji 👩‍👩‍👧‍👦 and 漢字, tabs\t\tnewlines\n\nend';
  for (const model of ['llama3', 'llama2'] as const) {
    const tok = await bundledTokenizer(model);
    const ids = tok.encode(line);
    const decoder = new TextStreamDecoder(tok);
    const deltas = [...ids.map((id) => decoder.push(id)), decoder.flush()];
    // The stream keeps the space a SentencePiece tokenizer prepends; decode() strips it.
    assert.equal(deltas.join(''), model === 'llama2' ? ` ${line}` : line);
    assert.equal(tok.decode(ids), line);
    for (const delta of deltas) assert.ok(!delta.includes('\uFFFD'));
  }
});

test('tokenBytes: byte fallback, ▁, ByteLevel and special tokens', async () => {
  const llama2 = await bundledTokenizer('llama2');
  assert.deepEqual([...llama2.tokenBytes(llama2.tokenToId('<0x41>')!)], [0x41]);
  assert.deepEqual([...llama2.tokenBytes(llama2.tokenToId('<0x0A>')!)], [0x0a]);
  assert.equal(Buffer.from(llama2.tokenBytes(llama2.tokenToId('▁the')!)).toString(), ' the');
  assert.equal(llama2.tokenBytes(llama2.tokenToId('</s>')!).length, 0);
  assert.throws(() => llama2.tokenBytes(32000), /token id must be an integer in \[0, 32000\), got 32000/);
  assert.throws(() => llama2.decode([1, -1]), /`ids\[1\]`/);

  const qwen = await bundledTokenizer('qwen3');
  assert.equal(Buffer.from(qwen.tokenBytes(qwen.tokenToId('Ġworld')!)).toString(), ' world');
  assert.deepEqual([...qwen.tokenBytes(qwen.tokenToId('Ċ')!)], [0x0a]);
  // A lone byte of a multi-byte character: 'æ' is byte 0xE6 in GPT-2's alphabet.
  assert.deepEqual([...qwen.tokenBytes(qwen.tokenToId('æ')!)], [0xe6]);
  assert.equal(qwen.tokenBytes(qwen.tokenToId('<|im_end|>')!).length, 0);
  // A non-special added token stands for its text.
  assert.equal(Buffer.from(qwen.tokenBytes(qwen.tokenToId('<think>')!)).toString(), '<think>');
  assert.equal(qwen.decode([qwen.tokenToId('<|im_start|>')!, ...qwen.encode('hi'), qwen.tokenToId('<|im_end|>')!]), 'hi');
});

test('special tokens in text: ordinary text by default, the tokens when parsed', async () => {
  const qwen = await bundledTokenizer('qwen3');
  const imEnd = qwen.tokenToId('<|im_end|>')!;
  const think = qwen.tokenToId('<think>')!;
  const text = 'a<|im_end|>b<think>c';
  assert.ok(!qwen.encode(text).includes(imEnd));
  assert.ok(qwen.encode(text).includes(think), 'non-special added tokens are always matched');
  assert.ok(qwen.encode(text, { parseSpecialTokens: true }).includes(imEnd));
  assert.equal(qwen.decode(qwen.encode(text)), text);
  assert.equal(qwen.decode(qwen.encode(text, { parseSpecialTokens: true })), 'ab<think>c');
});

test('EOS and BOS from tokenizer_config.json and generation_config.json', async () => {
  const llama2 = await bundledTokenizer('llama2');
  assert.deepEqual([llama2.eosId, llama2.eosIds, llama2.bosId, llama2.addBosToken, llama2.addEosToken], [2, [2], 1, true, false]);
  assert.deepEqual(llama2.encode('hi', { addSpecialTokens: true }).slice(0, 1), [1]);
  assert.equal(llama2.vocabSize, 32000);

  // The same settings on a small tokenizer (<unk> 0, <s> 1, </s> 2), to try variants quickly.
  const config = { bos_token: '<s>', eos_token: '</s>', add_bos_token: true };
  const load = async (files: Record<string, object>) =>
    (await loadTokenizer(await modelFolder(undefined, { 'tokenizer.json': tinyTokenizerJson(), ...files }))) as HfTokenizer;
  // eos_token_id as a list: every id is an EOS, tokenizer_config's eos_token first.
  const listed = await load({ 'tokenizer_config.json': config, 'generation_config.json': { bos_token_id: 1, eos_token_id: [0, 2, 1] } });
  assert.deepEqual([listed.eosId, listed.eosIds], [2, [2, 0, 1]]);
  // ... or a number; add_bos_token false keeps BOS off, add_eos_token puts EOS last.
  const single = await load({
    'tokenizer_config.json': { ...config, eos_token: null, add_bos_token: false, add_eos_token: true },
    'generation_config.json': { eos_token_id: 0 },
  });
  assert.deepEqual([single.eosId, single.eosIds, single.addBosToken, single.addEosToken], [0, [0], false, true]);
  assert.deepEqual(single.encode('abc', { addSpecialTokens: true }), [...single.encode('abc'), 0]);
  // No add_bos_token: tokenizer.json's TemplateProcessing decides, as in the Rust tokenizers.
  const templated = tinyTokenizerJson();
  templated.post_processor = {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [],
    special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
  };
  const fromTemplate = await load({ 'tokenizer.json': templated, 'tokenizer_config.json': { eos_token: '</s>' } });
  assert.deepEqual([fromTemplate.bosId, fromTemplate.addBosToken, fromTemplate.addEosToken], [1, true, false]);
  assert.deepEqual(fromTemplate.encode('abc', { addSpecialTokens: true }), (await rustTokenizer(templated).encode('abc', null, { addSpecialTokens: true })).getIds());
});
