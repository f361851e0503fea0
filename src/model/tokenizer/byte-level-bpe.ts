import { InvalidArgument } from '../../common/errors.js';
import { BYTE_TO_UNICODE, unicodeToBytes } from './bytes-to-unicode.js';
import { MergeTable } from './merge-table.js';
import type { EncodeOptions, Tokenizer } from './tokenizer.js';

/** The end-of-sequence token of every GPT-2-family vocabulary. */
export const END_OF_TEXT = '<|endoftext|>';

/**
 * GPT-2's pre-tokenisation pattern (openai/gpt-2 `encoder.py`, tiktoken
 * `r50k_base`): BPE never merges across the pieces it cuts the text into.
 * It is a global (`g`) regex with `lastIndex` state: copy it (`new RegExp(p)`) before use.
 */
export const GPT2_SPLIT_PATTERN =
  /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** Words longer than this (UTF-16 units) are not cached: they are rare and would bloat the cache. */
const MAX_CACHED_WORD = 256;
const utf8Encoder = new TextEncoder();
// ignoreBOM keeps a leading U+FEFF in the text, so decode(encode(x)) === x holds for it too.
const utf8Decoder = new TextDecoder('utf-8', { ignoreBOM: true });

/** What a {@link ByteLevelBpe} is built from: the contents of vocab.json + merges.txt. */
export interface ByteLevelBpeOptions {
  /** Token spelling (GPT-2 byte-to-unicode alphabet) -> id, special tokens included. */
  vocab: ReadonlyMap<string, number> | Readonly<Record<string, number>>;
  /** Merge rules in rank order (first = applied first), as spellings. */
  merges: ReadonlyArray<readonly [string, string]>;
  /**
   * Spellings of special tokens (each must be in `vocab`). `<|endoftext|>` is
   * always special and must be in `vocab`. Default: just `<|endoftext|>`.
   */
  specialTokens?: readonly string[];
  /** Where the vocabulary came from (a file name), quoted in error messages. */
  source?: string;
  /** Most distinct words whose encodings are cached (entries). Default 50,000. */
  cacheSize?: number;
}

/**
 * GPT-2's byte-level BPE tokenizer: the text is cut by {@link GPT2_SPLIT_PATTERN},
 * each piece becomes its UTF-8 bytes, and the ranked merges are applied to the
 * bytes. Gives the same ids as GPT-2's `encoder.py`, tiktoken `r50k_base` and
 * Hugging Face `tokenizers` for the same vocabulary and merges.
 *
 * Special tokens are not produced by {@link encode} (their text is encoded
 * as ordinary text, like tiktoken with no allowed specials) unless
 * `parseSpecialTokens` is set, and stand for no bytes, so {@link decode}
 * leaves them out.
 */
export class ByteLevelBpe implements Tokenizer {
  /** Number of ids: the largest id + 1. */
  readonly vocabSize: number;
  /** Id of `<|endoftext|>`. */
  readonly eosId: number;
  /** Special token spelling -> id. */
  readonly specialTokens: ReadonlyMap<string, number>;

  private readonly ids: ReadonlyMap<string, number>;
  private readonly tokens: (string | undefined)[];
  private readonly bytes: Uint8Array[];
  /** Byte value -> id of its single-byte token. */
  private readonly byteIds: Int32Array;
  private readonly merges: ReadonlyArray<readonly [string, string]>;
  private readonly table: MergeTable;
  private readonly cache = new Map<string, readonly number[]>();
  private readonly cacheSize: number;
  /** Matches any special token's spelling, longest first (as tokenizers' added-token matcher). */
  private readonly specialPattern: RegExp;

  /** @throws InvalidArgument naming `options.source` when the vocabulary or merges are inconsistent. */
  constructor(options: ByteLevelBpeOptions) {
    const source = options.source ?? 'tokenizer';
    const vocab = toMap(options.vocab);
    this.ids = vocab;
    this.cacheSize = options.cacheSize ?? 50_000;

    let maxId = -1;
    for (const [token, id] of vocab) {
      if (!Number.isInteger(id) || id < 0 || id >= 2 ** 24) {
        throw new InvalidArgument(
          `${source}: id of token ${JSON.stringify(token)} must be an integer in [0, 16777216), got ${String(id)}`,
        );
      }
      maxId = Math.max(maxId, id);
    }
    this.vocabSize = maxId + 1;
    this.tokens = Array.from({ length: this.vocabSize }, (): string | undefined => undefined);
    for (const [token, id] of vocab) {
      const other = this.tokens[id];
      if (other !== undefined) {
        throw new InvalidArgument(
          `${source}: id ${id} is given to both ${JSON.stringify(other)} and ${JSON.stringify(token)}`,
        );
      }
      this.tokens[id] = token;
    }

    const eosId = vocab.get(END_OF_TEXT);
    if (eosId === undefined) {
      throw new InvalidArgument(
        `${source}: the vocabulary has no ${JSON.stringify(END_OF_TEXT)} token (needed as end of sequence)`,
      );
    }
    this.eosId = eosId;
    const specials = new Map<string, number>([[END_OF_TEXT, eosId]]);
    for (const token of options.specialTokens ?? []) {
      const id = vocab.get(token);
      if (id === undefined) {
        throw new InvalidArgument(`${source}: special token ${JSON.stringify(token)} is not in the vocabulary`);
      }
      specials.set(token, id);
    }
    this.specialTokens = specials;
    const spellings = [...specials.keys()].sort((a, b) => b.length - a.length);
    this.specialPattern = new RegExp(spellings.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'gu');

    const specialIds = new Set(specials.values());
    this.bytes = this.tokens.map((token, id) => {
      if (token === undefined || specialIds.has(id)) return new Uint8Array(0);
      // A non-special token outside the byte alphabet stands for its own UTF-8 text.
      return unicodeToBytes(token) ?? utf8Encoder.encode(token);
    });

    this.byteIds = new Int32Array(256);
    for (let b = 0; b < 256; b++) {
      const id = vocab.get(BYTE_TO_UNICODE[b]!);
      if (id === undefined) {
        throw new InvalidArgument(
          `${source}: the vocabulary lacks the single-byte token ${JSON.stringify(BYTE_TO_UNICODE[b])} (byte 0x${b.toString(16).padStart(2, '0')})`,
        );
      }
      this.byteIds[b] = id;
    }

    this.merges = options.merges.map(([a, b]) => [a, b] as const);
    this.table = new MergeTable(options.merges.length);
    options.merges.forEach(([a, b], rank) => {
      const idA = vocab.get(a);
      const idB = vocab.get(b);
      const merged = vocab.get(a + b);
      if (idA === undefined || idB === undefined || merged === undefined) {
        const missing = idA === undefined ? a : idB === undefined ? b : a + b;
        throw new InvalidArgument(
          `${source}: merge ${rank + 1} (${JSON.stringify(`${a} ${b}`)}) uses ${JSON.stringify(missing)}, which is not in the vocabulary`,
        );
      }
      this.table.add(idA, idB, merged, rank);
    });
  }

  /**
   * Text -> token ids. `<|endoftext|>` in the text is encoded as ordinary text
   * unless `options.parseSpecialTokens`, which makes each special token's
   * spelling that token (the text between is encoded as usual).
   */
  encode(text: string, options: EncodeOptions = {}): number[] {
    if (!options.parseSpecialTokens) return this.encodeText(text);
    const out: number[] = [];
    let at = 0;
    for (const m of text.matchAll(this.specialPattern)) {
      for (const id of this.encodeText(text.slice(at, m.index))) out.push(id);
      out.push(this.specialTokens.get(m[0])!);
      at = m.index + m[0].length;
    }
    for (const id of this.encodeText(text.slice(at))) out.push(id);
    return out;
  }

  private encodeText(text: string): number[] {
    const out: number[] = [];
    const split = new RegExp(GPT2_SPLIT_PATTERN);
    for (let m = split.exec(text); m !== null; m = split.exec(text)) {
      const word = m[0];
      const ids = this.cache.get(word) ?? this.encodeWord(word);
      for (let i = 0; i < ids.length; i++) out.push(ids[i]!);
    }
    return out;
  }

  /** Token ids -> text; special tokens contribute nothing, invalid UTF-8 becomes U+FFFD. */
  decode(ids: readonly number[]): string {
    let length = 0;
    for (let i = 0; i < ids.length; i++) length += this.bytesOf(ids[i]!, i).length;
    const all = new Uint8Array(length);
    let at = 0;
    for (let i = 0; i < ids.length; i++) {
      const b = this.bytes[ids[i]!]!;
      all.set(b, at);
      at += b.length;
    }
    return utf8Decoder.decode(all);
  }

  /** The bytes token `id` stands for (a copy; empty for special tokens). */
  tokenBytes(id: number): Uint8Array {
    return this.bytesOf(id, undefined).slice();
  }

  /** The vocabulary spelling of `id` (byte-to-unicode alphabet), or undefined for an unused id. */
  idToToken(id: number): string | undefined {
    return this.tokens[id];
  }

  /** The id of a vocabulary spelling, or undefined. */
  tokenToId(token: string): number | undefined {
    return this.ids.get(token);
  }

  /** Spelling -> id for every token, special tokens included, in id order. */
  getVocab(): Map<string, number> {
    const vocab = new Map<string, number>();
    this.tokens.forEach((token, id) => {
      if (token !== undefined) vocab.set(token, id);
    });
    return vocab;
  }

  /** The merge rules in rank order, as spellings. */
  getMerges(): Array<[string, string]> {
    return this.merges.map(([a, b]) => [a, b]);
  }

  private bytesOf(id: number, index: number | undefined): Uint8Array {
    const bytes = Number.isInteger(id) ? this.bytes[id] : undefined;
    if (bytes === undefined) {
      const field = index === undefined ? 'token id' : `\`ids[${index}]\``;
      throw new InvalidArgument(`${field} must be an integer in [0, ${this.vocabSize}), got ${id}`);
    }
    return bytes;
  }

  private encodeWord(word: string): readonly number[] {
    const utf8 = utf8Encoder.encode(word);
    const symbols = new Array<number>(utf8.length);
    for (let i = 0; i < utf8.length; i++) symbols[i] = this.byteIds[utf8[i]!]!;
    const ids = this.table.apply(symbols);
    if (word.length <= MAX_CACHED_WORD) {
      // Evict the oldest entry (Maps iterate in insertion order): a bounded FIFO cache.
      if (this.cache.size >= this.cacheSize) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(word, ids);
    }
    return ids;
  }
}

function toMap(
  vocab: ReadonlyMap<string, number> | Readonly<Record<string, number>>,
): ReadonlyMap<string, number> {
  return vocab instanceof Map ? vocab : new Map(Object.entries(vocab));
}
