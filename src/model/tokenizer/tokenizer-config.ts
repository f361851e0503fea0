import { join } from 'node:path';
import { InvalidArgument } from '../../common/errors.js';
import { isObject, parseJsonFile, readOptionalFile } from './json-file.js';

/**
 * What gentune reads from a model folder's `tokenizer_config.json`
 * (transformers' format): the special tokens by role, whether BOS/EOS are
 * added around a text, and the chat template. Token values are spellings;
 * the tokenizer resolves them to ids.
 */
export interface TokenizerConfig {
  /** Path of the file, quoted in error messages. */
  readonly file: string;
  readonly bosToken?: string;
  readonly eosToken?: string;
  readonly unkToken?: string;
  readonly padToken?: string;
  readonly additionalSpecialTokens: readonly string[];
  /** `add_bos_token`, when the file sets it. */
  readonly addBosToken?: boolean;
  /** `add_eos_token`, when the file sets it. */
  readonly addEosToken?: boolean;
  /** `chat_template`: one Jinja template, or (the list form) templates by name. */
  readonly chatTemplate?: string | ReadonlyMap<string, string>;
}

/** The end-of-sequence ids of a model folder's `generation_config.json`. */
export interface GenerationConfig {
  /** Path of the file, quoted in error messages. */
  readonly file: string;
  /** `eos_token_id` (a number or a list) as a list; empty when the file has none. */
  readonly eosTokenIds: readonly number[];
}

/**
 * Reads `dir/tokenizer_config.json`; undefined when the folder has none.
 *
 * @throws InvalidArgument naming the file and the field when it is malformed.
 */
export async function readTokenizerConfig(dir: string): Promise<TokenizerConfig | undefined> {
  const file = join(dir, 'tokenizer_config.json');
  const text = await readOptionalFile(file);
  return text === undefined ? undefined : parseTokenizerConfig(parseJsonFile(text, file), file);
}

/**
 * Reads `dir/generation_config.json`; undefined when the folder has none.
 *
 * @throws InvalidArgument naming the file when `eos_token_id` is not an id or a list of ids.
 */
export async function readGenerationConfig(dir: string): Promise<GenerationConfig | undefined> {
  const file = join(dir, 'generation_config.json');
  const text = await readOptionalFile(file);
  if (text === undefined) return undefined;
  const root = parseJsonFile(text, file);
  if (!isObject(root)) throw new InvalidArgument(`${file}: expected a JSON object`);
  const value = root['eos_token_id'];
  if (value === undefined || value === null) return { file, eosTokenIds: [] };
  const ids = Array.isArray(value) ? value : [value];
  if (ids.length === 0 || !ids.every(isId)) {
    throw new InvalidArgument(
      `${file}: \`eos_token_id\` must be a token id or a non-empty list of ids, got ${JSON.stringify(value)}`,
    );
  }
  return { file, eosTokenIds: ids as number[] };
}

/**
 * Validates a parsed `tokenizer_config.json`. A special token is a string or
 * transformers' serialised AddedToken (`{"__type": "AddedToken", "content": ...}`);
 * null means none.
 */
export function parseTokenizerConfig(root: unknown, file: string): TokenizerConfig {
  if (!isObject(root)) throw new InvalidArgument(`${file}: expected a JSON object`);
  const token = (field: string): string | undefined => {
    const value = root[field];
    if (value === undefined || value === null) return undefined;
    const content = tokenContent(value);
    if (content === undefined) {
      throw new InvalidArgument(
        `${file}: \`${field}\` must be a token string or an AddedToken object, got ${JSON.stringify(value)}`,
      );
    }
    return content;
  };
  const flag = (field: string): boolean | undefined => {
    const value = root[field];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'boolean') throw new InvalidArgument(`${file}: \`${field}\` must be true or false, got ${JSON.stringify(value)}`);
    return value;
  };
  const additional = root['additional_special_tokens'] ?? [];
  if (!Array.isArray(additional)) {
    throw new InvalidArgument(`${file}: \`additional_special_tokens\` must be a list of tokens`);
  }
  const additionalSpecialTokens = additional.map((value: unknown, i) => {
    const content = tokenContent(value);
    if (content === undefined) {
      throw new InvalidArgument(`${file}: \`additional_special_tokens[${i}]\` must be a token, got ${JSON.stringify(value)}`);
    }
    return content;
  });
  return {
    file,
    bosToken: token('bos_token'),
    eosToken: token('eos_token'),
    unkToken: token('unk_token'),
    padToken: token('pad_token'),
    additionalSpecialTokens,
    addBosToken: flag('add_bos_token'),
    addEosToken: flag('add_eos_token'),
    chatTemplate: chatTemplateField(root['chat_template'], file),
  };
}

/** `chat_template`: a string, or a list of `{name, template}` (transformers' multi-template form). */
function chatTemplateField(value: unknown, file: string): string | ReadonlyMap<string, string> | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (!Array.isArray(value)) {
    throw new InvalidArgument(`${file}: \`chat_template\` must be a string or a list of {name, template}`);
  }
  const named = new Map<string, string>();
  value.forEach((item: unknown, i) => {
    if (!isObject(item) || typeof item['name'] !== 'string' || typeof item['template'] !== 'string') {
      throw new InvalidArgument(`${file}: \`chat_template[${i}]\` must be {"name": string, "template": string}`);
    }
    named.set(item['name'], item['template']);
  });
  return named;
}

function tokenContent(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  return isObject(value) && typeof value['content'] === 'string' ? value['content'] : undefined;
}

function isId(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 0;
}
