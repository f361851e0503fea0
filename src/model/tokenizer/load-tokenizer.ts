import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgument } from '../../common/errors.js';
import { ByteLevelBpe } from './byte-level-bpe.js';
import { HfTokenizer } from './hf-tokenizer.js';
import { isObject, parseJsonFile, readOptionalFile } from './json-file.js';
import type { Tokenizer } from './tokenizer.js';
import { readGenerationConfig, readTokenizerConfig } from './tokenizer-config.js';

type Merge = [string, string];

/**
 * Loads the tokenizer of a Hugging Face model folder:
 * - a GPT-2-style `tokenizer.json` (a bare `ByteLevel` pre-tokenizer), or
 *   `vocab.json` + `merges.txt`: a {@link ByteLevelBpe}, as {@link loadByteLevelBpe};
 * - any other `tokenizer.json` (Llama 2/3, Mistral, Qwen): an {@link HfTokenizer},
 *   with BOS/EOS from `tokenizer_config.json` and `generation_config.json`.
 *
 * @param dir the model folder.
 * @throws InvalidArgument naming the file when files are missing, malformed or unsupported.
 */
export async function loadTokenizer(dir: string): Promise<Tokenizer> {
  const tokenizerJson = join(dir, 'tokenizer.json');
  const text = await readOptionalFile(tokenizerJson);
  if (text === undefined) return loadVocabAndMerges(dir);
  const root = parseJsonFile(text, tokenizerJson);
  if (isGpt2Style(root)) return fromTokenizerJson(root, tokenizerJson);
  const [config, generation] = await Promise.all([readTokenizerConfig(dir), readGenerationConfig(dir)]);
  return new HfTokenizer({ tokenizerJson: root, tokenizerFile: tokenizerJson, config, generation });
}

/**
 * Loads a GPT-2-style tokenizer as a {@link ByteLevelBpe}, for callers that
 * need its vocabulary and merges (saving, retraining): `tokenizer.json` (the
 * `tokenizers` format, byte-level BPE) when present, else `vocab.json` +
 * `merges.txt`.
 *
 * @param dir the model folder.
 * @throws InvalidArgument naming the file when files are missing or malformed,
 *   when the tokenizer is not a GPT-2 byte-level BPE, or when `<|endoftext|>` is missing.
 */
export async function loadByteLevelBpe(dir: string): Promise<ByteLevelBpe> {
  const tokenizerJson = join(dir, 'tokenizer.json');
  const text = await readOptionalFile(tokenizerJson);
  if (text !== undefined) return fromTokenizerJson(parseJsonFile(text, tokenizerJson), tokenizerJson);
  return loadVocabAndMerges(dir);
}

/**
 * GPT-2's tokenizer.json has one `ByteLevel` pre-tokenizer, not inside a
 * Sequence (Llama 3 and Qwen put a Split before theirs): such files keep the
 * ByteLevelBpe path, which rejects what GPT-2 does not use.
 */
function isGpt2Style(root: unknown): boolean {
  return isObject(root) && isObject(root['pre_tokenizer']) && root['pre_tokenizer']['type'] === 'ByteLevel';
}

async function loadVocabAndMerges(dir: string): Promise<ByteLevelBpe> {
  const vocabPath = join(dir, 'vocab.json');
  const mergesPath = join(dir, 'merges.txt');
  const [vocabText, mergesText] = await Promise.all([readOptionalFile(vocabPath), readOptionalFile(mergesPath)]);
  if (vocabText === undefined && mergesText === undefined) {
    throw new InvalidArgument(`${dir}: no tokenizer found: expected tokenizer.json, or vocab.json and merges.txt`);
  }
  if (vocabText === undefined) throw new InvalidArgument(`${vocabPath}: file not found (merges.txt needs it)`);
  if (mergesText === undefined) throw new InvalidArgument(`${mergesPath}: file not found (vocab.json needs it)`);
  return new ByteLevelBpe({
    vocab: parseVocab(parseJsonFile(vocabText, vocabPath), vocabPath, 'vocab'),
    merges: parseMergesTxt(mergesText, mergesPath),
    source: `${vocabPath} + merges.txt`,
  });
}

/**
 * Writes `vocab.json`, `merges.txt` and `tokenizer.json` into `dir` (created if
 * needed). The tokenizer.json is what Hugging Face `tokenizers` writes for GPT-2:
 * ByteLevel pre-tokenizer (add_prefix_space false) and decoder, BPE model, and
 * the special tokens as added tokens.
 */
export async function saveTokenizer(dir: string, tok: ByteLevelBpe): Promise<void> {
  await mkdir(dir, { recursive: true });
  const vocab = [...tok.getVocab()];
  const merges = tok.getMerges();
  // Written by hand so the file lists tokens in id order: JSON.stringify would move
  // integer-like keys ("0", "1", ...) to the front.
  const vocabJson = `{${vocab.map(([token, id]) => `${JSON.stringify(token)}: ${id}`).join(', ')}}`;
  const addedTokens = [...tok.specialTokens]
    .sort((a, b) => a[1] - b[1])
    .map(([content, id]) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    }));
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: { ...byteLevel, trim_offsets: false },
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: '@VOCAB@',
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
  // The key + placeholder pair occurs once (added tokens have no `vocab` key); a
  // replacer function keeps `$` in token spellings literal.
  const tokenizerJson = JSON.stringify(tokenizer, null, 2).replace('"vocab": "@VOCAB@"', () => `"vocab": ${vocabJson}`);
  await Promise.all([
    writeFile(join(dir, 'vocab.json'), vocabJson + '\n'),
    writeFile(join(dir, 'merges.txt'), ['#version: 0.2', ...merges.map(([a, b]) => `${a} ${b}`)].join('\n') + '\n'),
    writeFile(join(dir, 'tokenizer.json'), tokenizerJson + '\n'),
  ]);
}

function fromTokenizerJson(root: unknown, file: string): ByteLevelBpe {
  if (!isObject(root)) throw new InvalidArgument(`${file}: expected a JSON object`);
  const model = root['model'];
  if (!isObject(model)) throw new InvalidArgument(`${file}: \`model\` must be an object`);
  if (model['type'] !== undefined && model['type'] !== 'BPE') {
    throw new InvalidArgument(`${file}: \`model.type\` must be "BPE", got ${JSON.stringify(model['type'])}`);
  }
  for (const field of ['continuing_subword_prefix', 'end_of_word_suffix'] as const) {
    const value = model[field];
    if (value !== undefined && value !== null && value !== '') {
      throw new InvalidArgument(`${file}: \`model.${field}\` is not supported, got ${JSON.stringify(value)}`);
    }
  }
  if (model['ignore_merges'] === true) {
    throw new InvalidArgument(`${file}: \`model.ignore_merges\` true is not supported`);
  }
  checkByteLevelPreTokenizer(root, file);

  const vocab = new Map(parseVocab(model['vocab'], file, 'model.vocab'));
  const merges = parseMergesJson(model['merges'], file);
  const specials: string[] = [];
  const added = root['added_tokens'] ?? [];
  if (!Array.isArray(added)) throw new InvalidArgument(`${file}: \`added_tokens\` must be an array`);
  added.forEach((token: unknown, i) => {
    const field = `added_tokens[${i}]`;
    if (!isObject(token) || typeof token['content'] !== 'string' || !Number.isInteger(token['id'])) {
      throw new InvalidArgument(`${file}: \`${field}\` must have a string \`content\` and an integer \`id\``);
    }
    const content = token['content'];
    const id = token['id'] as number;
    const known = vocab.get(content);
    if (known !== undefined && known !== id) {
      throw new InvalidArgument(`${file}: \`${field}\` gives ${JSON.stringify(content)} id ${id}, but model.vocab has ${known}`);
    }
    vocab.set(content, id);
    if (token['special'] === true) specials.push(content);
  });
  return new ByteLevelBpe({ vocab, merges, specialTokens: specials, source: file });
}

/** Our BPE is GPT-2's: byte-level pre-tokenisation with its regex, no normalizer, no prefix space. */
function checkByteLevelPreTokenizer(root: Record<string, unknown>, file: string): void {
  const normalizer = root['normalizer'];
  if (normalizer !== undefined && normalizer !== null) {
    throw new InvalidArgument(`${file}: \`normalizer\` must be null for a GPT-2 byte-level BPE`);
  }
  const pre = root['pre_tokenizer'];
  const type = isObject(pre) ? pre['type'] : pre;
  if (!isObject(pre) || type !== 'ByteLevel') {
    throw new InvalidArgument(`${file}: \`pre_tokenizer.type\` must be "ByteLevel", got ${JSON.stringify(type ?? null)}`);
  }
  if (pre['add_prefix_space'] === true) {
    throw new InvalidArgument(`${file}: \`pre_tokenizer.add_prefix_space\` true is not supported (GPT-2 uses false)`);
  }
  if (pre['use_regex'] === false) {
    throw new InvalidArgument(`${file}: \`pre_tokenizer.use_regex\` false is not supported (GPT-2 uses true)`);
  }
}

function parseVocab(value: unknown, file: string, field: string): Map<string, number> {
  if (!isObject(value)) throw new InvalidArgument(`${file}: \`${field}\` must be an object of token -> id`);
  const vocab = new Map<string, number>();
  for (const [token, id] of Object.entries(value)) {
    if (!Number.isInteger(id) || (id as number) < 0) {
      throw new InvalidArgument(
        `${file}: \`${field}\` id of ${JSON.stringify(token)} must be a non-negative integer, got ${JSON.stringify(id)}`,
      );
    }
    vocab.set(token, id as number);
  }
  return vocab;
}

/** merges.txt: one "a b" per line, after an optional `#version` line. */
function parseMergesTxt(text: string, file: string): Merge[] {
  const merges: Merge[] = [];
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line === '' || (i === 0 && line.startsWith('#version'))) return;
    const merge = splitMerge(line);
    if (merge === undefined) {
      throw new InvalidArgument(
        `${file} line ${i + 1}: expected two tokens separated by one space, got ${JSON.stringify(line)}`,
      );
    }
    merges.push(merge);
  });
  return merges;
}

/** tokenizer.json `model.merges`: "a b" strings (tokenizers < 0.20) or ["a", "b"] pairs. */
function parseMergesJson(value: unknown, file: string): Merge[] {
  if (!Array.isArray(value)) throw new InvalidArgument(`${file}: \`model.merges\` must be an array`);
  return value.map((item: unknown, i) => {
    const merge =
      typeof item === 'string'
        ? splitMerge(item)
        : Array.isArray(item) && item.length === 2 && item.every((s) => typeof s === 'string' && s !== '')
          ? ([item[0], item[1]] as Merge)
          : undefined;
    if (merge === undefined) {
      throw new InvalidArgument(
        `${file}: \`model.merges[${i}]\` must be "a b" or ["a", "b"], got ${JSON.stringify(item)}`,
      );
    }
    return merge;
  });
}

function splitMerge(line: string): Merge | undefined {
  const parts = line.split(' ');
  return parts.length === 2 && parts[0] !== '' && parts[1] !== '' ? [parts[0]!, parts[1]!] : undefined;
}
