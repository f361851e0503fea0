// Worker thread (started by rustReference in hf-fixtures.ts): runs Hugging Face's
// Rust `tokenizers` on a tokenizer.json while the test's own thread loads and runs
// gentune's tokenizer, so that the two loads (a second or two each) overlap.
import { readFileSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import rustTokenizers from 'tokenizers';
import { Rng } from '../../../../src/common/rng.js';
import type { RustReference, RustReferenceRequest } from './hf-fixtures.js';

const request = workerData as RustReferenceRequest;
const json = JSON.parse(readFileSync(request.tokenizerFile, 'utf8'));
const full = rustTokenizers.Tokenizer.fromFile(request.tokenizerFile);
// The reference for "special tokens as text": the same file without its special
// added tokens (what tokenizers' encode_special_tokens switch does; the Node binding
// lacks it). Its ids differ, so its tokens come back through the full vocabulary.
const withoutSpecials = rustTokenizers.Tokenizer.fromString(
  JSON.stringify({ ...json, added_tokens: json.added_tokens.filter((t: { special: boolean }) => !t.special) }),
);

const [parsedEnc, textEnc, bosEnc] = await Promise.all([
  full.encodeBatch(request.lines, { addSpecialTokens: false }),
  withoutSpecials.encodeBatch(request.lines, { addSpecialTokens: false }),
  full.encodeBatch(request.lines.slice(0, request.withSpecialTokens), { addSpecialTokens: true }),
]);
const parsed = parsedEnc.map((e) => e.getIds());
const text = textEnc.map((e) => e.getTokens().map((t) => full.tokenToId(t)!));

// Random id sequences, byte-fallback tokens left out: for invalid UTF-8 the Rust
// decoder writes one U+FFFD per byte token, gentune's one per invalid sequence
// (as a streaming decode does).
const ordinary = Object.entries(full.getVocab(true))
  .filter(([token]) => !/^<0x[0-9A-F]{2}>$/.test(token))
  .map(([, id]) => id)
  .sort((a, b) => a - b);
const rng = new Rng(request.seed);
const random = Array.from({ length: request.randomSequences }, () =>
  Array.from({ length: 1 + rng.int(12) }, () => ordinary[rng.int(ordinary.length)]!),
);

const [decodedParsed, decodedText, decodedRandom] = await Promise.all([
  full.decodeBatch(parsed, true),
  full.decodeBatch(text, true),
  full.decodeBatch(random, true),
]);
const reply: RustReference = {
  parsed,
  text,
  decodedParsed,
  decodedText,
  withSpecialTokens: bosEnc.map((e) => e.getIds()),
  random,
  decodedRandom,
};
parentPort!.postMessage(reply);
