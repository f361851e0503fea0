import { InvalidArgument } from '../../common/errors.js';
import { BYTE_TO_UNICODE } from './bytes-to-unicode.js';
import { isObject } from './json-file.js';
import { metaspaceReplacement } from './token-byte-decoding.js';

/** An entry of tokenizer.json `added_tokens`. */
export interface AddedTokenSpec {
  readonly id: number;
  readonly content: string;
  /** Special tokens are control tokens: never produced from text unless asked, no bytes, left out of decode. */
  readonly special: boolean;
}

/** A checked `tokenizer.json` for {@link HfTokenizer}. */
export interface HfTokenizerJson {
  /** The parsed file, as @huggingface/tokenizers takes it. */
  readonly root: Record<string, unknown>;
  readonly addedTokens: readonly AddedTokenSpec[];
  /** Id -> spelling over model.vocab and added_tokens; unused ids are undefined. */
  readonly tokens: readonly (string | undefined)[];
  /** Spellings of the special tokens a `TemplateProcessing` post-processor puts before and after a text. */
  readonly template: { readonly prefix: readonly string[]; readonly suffix: readonly string[] };
}

/**
 * Checks the parts of a Hugging Face `tokenizer.json` that gentune relies on,
 * and rejects settings that @huggingface/tokenizers would silently get wrong
 * (it ignores them where the Rust `tokenizers` honours them): a BPE model with
 * dropout or subword affixes, a `Metaspace` pre-tokenizer that splits, a `Split`
 * pre-tokenizer with a merging behaviour, `single_word` added tokens.
 * `truncation` and `padding` are ignored: lengths are the caller's business
 * (transformers too sets them per call).
 *
 * @throws InvalidArgument naming `file` and the field.
 */
export function checkHfTokenizerJson(root: unknown, file: string): HfTokenizerJson {
  if (!isObject(root)) throw new InvalidArgument(`${file}: expected a JSON object`);
  const model = root['model'];
  if (!isObject(model)) throw new InvalidArgument(`${file}: \`model\` must be an object`);
  if (model['type'] !== 'BPE') {
    throw new InvalidArgument(`${file}: \`model.type\` must be "BPE", got ${JSON.stringify(model['type'] ?? null)}`);
  }
  const vocab = model['vocab'];
  if (!isObject(vocab)) throw new InvalidArgument(`${file}: \`model.vocab\` must be an object of token -> id`);
  const tokens: (string | undefined)[] = [];
  const place = (token: string, id: number): void => {
    const other = tokens[id];
    if (other !== undefined && other !== token) {
      throw new InvalidArgument(`${file}: id ${id} is given to both ${JSON.stringify(other)} and ${JSON.stringify(token)}`);
    }
    tokens[id] = token;
  };
  for (const token in vocab) {
    const id = vocab[token];
    if (!isId(id)) {
      throw new InvalidArgument(`${file}: \`model.vocab\` id of ${JSON.stringify(token)} must be a non-negative integer, got ${JSON.stringify(id)}`);
    }
    place(token, id);
  }
  checkMerges(model['merges'], file);
  const dropout = model['dropout'];
  if (dropout !== undefined && dropout !== null && dropout !== 0) {
    throw new InvalidArgument(`${file}: \`model.dropout\` is not supported (BPE dropout is for training), got ${JSON.stringify(dropout)}`);
  }
  for (const field of ['continuing_subword_prefix', 'end_of_word_suffix'] as const) {
    const value = model[field];
    if (value !== undefined && value !== null && value !== '') {
      throw new InvalidArgument(`${file}: \`model.${field}\` is not supported, got ${JSON.stringify(value)}`);
    }
  }
  checkComponent(root['normalizer'], 'normalizer', 'normalizers', file);
  checkComponent(root['pre_tokenizer'], 'pre_tokenizer', 'pretokenizers', file);
  checkCoverage(model, vocab as Record<string, number>, usesByteLevel(root['pre_tokenizer']), file);
  const added = addedTokens(root['added_tokens'], vocab as Record<string, number>, file);
  for (const token of added) place(token.content, token.id);
  // Dense, so that `tokens.length` is the vocabulary size and holes read as undefined.
  for (let id = 0; id < tokens.length; id++) tokens[id] ??= undefined;
  return { root, addedTokens: added, tokens, template: templateTokens(root['post_processor'], file) };
}

/**
 * Every text must have an encoding. A character outside the vocabulary needs
 * byte fallback, `<unk>`, or a ByteLevel alphabet the vocabulary covers:
 * otherwise the JS and the Rust tokenizers both drop it, but merge around the
 * gap differently.
 */
function checkCoverage(model: Record<string, unknown>, vocab: Record<string, number>, byteLevel: boolean, file: string): void {
  const unk = model['unk_token'];
  if (unk !== undefined && unk !== null) {
    if (typeof unk !== 'string' || !Object.hasOwn(vocab, unk)) {
      throw new InvalidArgument(`${file}: \`model.unk_token\` ${JSON.stringify(unk)} is not in model.vocab`);
    }
    return;
  }
  if (model['byte_fallback'] === true) return;
  if (!byteLevel) {
    throw new InvalidArgument(`${file}: \`model\` has no \`unk_token\`, no \`byte_fallback\` and no ByteLevel pre-tokenizer: text outside the vocabulary would be lost`);
  }
  const missing = BYTE_TO_UNICODE.findIndex((c) => !Object.hasOwn(vocab, c));
  if (missing !== -1) {
    throw new InvalidArgument(`${file}: \`model.vocab\` lacks the ByteLevel token ${JSON.stringify(BYTE_TO_UNICODE[missing])} (byte 0x${missing.toString(16).padStart(2, '0')}) and has no \`unk_token\``);
  }
}

function usesByteLevel(pre: unknown): boolean {
  if (!isObject(pre)) return false;
  if (pre['type'] === 'ByteLevel') return true;
  return Array.isArray(pre['pretokenizers']) && pre['pretokenizers'].some(usesByteLevel);
}

function checkMerges(merges: unknown, file: string): void {
  if (!Array.isArray(merges)) throw new InvalidArgument(`${file}: \`model.merges\` must be an array`);
  merges.forEach((item: unknown, i) => {
    const ok =
      typeof item === 'string'
        ? isMergeString(item)
        : Array.isArray(item) && item.length === 2 && item.every((s) => typeof s === 'string' && s !== '');
    if (!ok) throw new InvalidArgument(`${file}: \`model.merges[${i}]\` must be "a b" or ["a", "b"], got ${JSON.stringify(item)}`);
  });
}

/** A normalizer or pre-tokenizer, recursively through `Sequence`. */
function checkComponent(value: unknown, field: string, listKey: string, file: string): void {
  if (value === undefined || value === null) return;
  if (!isObject(value) || typeof value['type'] !== 'string') {
    throw new InvalidArgument(`${file}: \`${field}\` must be null or an object with a \`type\``);
  }
  const type = value['type'];
  if (type === 'Sequence') {
    const items = value[listKey];
    if (!Array.isArray(items)) throw new InvalidArgument(`${file}: \`${field}.${listKey}\` must be a list`);
    items.forEach((item: unknown, i) => checkComponent(item, `${field}.${listKey}[${i}]`, listKey, file));
  } else if (type === 'Metaspace') {
    metaspaceReplacement(value, file, field);
    // tokenizers splits on the replacement when `split` is true or absent; the JS
    // implementation never splits, which changes the BPE words.
    if (value['split'] !== false) {
      throw new InvalidArgument(`${file}: \`${field}.split\` must be false (a splitting Metaspace is not supported), got ${JSON.stringify(value['split'] ?? null)}`);
    }
    const scheme = value['prepend_scheme'];
    if (scheme !== undefined && scheme !== 'always' && scheme !== 'first' && scheme !== 'never') {
      throw new InvalidArgument(`${file}: \`${field}.prepend_scheme\` must be "always", "first" or "never", got ${JSON.stringify(scheme)}`);
    }
    if (scheme === undefined && value['add_prefix_space'] === false) {
      // The legacy spelling of prepend_scheme "never", which the JS implementation reads as "always".
      throw new InvalidArgument(`${file}: \`${field}.add_prefix_space\` false without \`prepend_scheme\` is not supported: write prepend_scheme "never"`);
    }
  } else if (type === 'Split') {
    const behavior = value['behavior'];
    if (behavior !== 'Isolated' && behavior !== 'Removed') {
      throw new InvalidArgument(`${file}: \`${field}.behavior\` must be "Isolated" or "Removed" (others are not supported), got ${JSON.stringify(behavior ?? null)}`);
    }
    if (value['invert'] === true) throw new InvalidArgument(`${file}: \`${field}.invert\` true is not supported`);
  }
}

function addedTokens(value: unknown, vocab: Record<string, number>, file: string): AddedTokenSpec[] {
  const list = value ?? [];
  if (!Array.isArray(list)) throw new InvalidArgument(`${file}: \`added_tokens\` must be an array`);
  return list.map((token: unknown, i): AddedTokenSpec => {
    const field = `added_tokens[${i}]`;
    if (!isObject(token) || typeof token['content'] !== 'string' || token['content'] === '' || !isId(token['id'])) {
      throw new InvalidArgument(`${file}: \`${field}\` must have a non-empty string \`content\` and a non-negative integer \`id\``);
    }
    const { content, id } = token;
    if (token['single_word'] === true) {
      throw new InvalidArgument(`${file}: \`${field}.single_word\` true is not supported (${JSON.stringify(content)})`);
    }
    const known = Object.hasOwn(vocab, content) ? vocab[content] : undefined;
    if (known !== undefined && known !== id) {
      throw new InvalidArgument(`${file}: \`${field}\` gives ${JSON.stringify(content)} id ${id}, but model.vocab has ${known}`);
    }
    return { id, content, special: token['special'] === true };
  });
}

/** The special tokens around the text (`$A`) in a TemplateProcessing `single` template, at any depth of a Sequence. */
function templateTokens(value: unknown, file: string): HfTokenizerJson['template'] {
  const none = { prefix: [], suffix: [] };
  if (!isObject(value)) return none;
  if (value['type'] === 'Sequence') {
    const processors = Array.isArray(value['processors']) ? value['processors'] : [];
    const found = processors.map((p: unknown) => templateTokens(p, file)).filter((t) => t.prefix.length + t.suffix.length > 0);
    return found[0] ?? none;
  }
  if (value['type'] !== 'TemplateProcessing') return none;
  const single = value['single'];
  if (!Array.isArray(single)) throw new InvalidArgument(`${file}: \`post_processor.single\` must be a list`);
  const prefix: string[] = [];
  const suffix: string[] = [];
  let seenText = false;
  for (const piece of single as unknown[]) {
    const special = isObject(piece) && isObject(piece['SpecialToken']) ? piece['SpecialToken']['id'] : undefined;
    if (typeof special === 'string') (seenText ? suffix : prefix).push(special);
    else if (isObject(piece) && isObject(piece['Sequence'])) seenText = true;
    else throw new InvalidArgument(`${file}: \`post_processor.single\` has an entry that is neither SpecialToken nor Sequence: ${JSON.stringify(piece)}`);
  }
  return { prefix, suffix };
}

/** "a b": exactly one space, with something on each side (no split: there are 10^5 merges). */
function isMergeString(merge: string): boolean {
  const space = merge.indexOf(' ');
  return space > 0 && space < merge.length - 1 && merge.indexOf(' ', space + 1) === -1;
}

function isId(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 0;
}
