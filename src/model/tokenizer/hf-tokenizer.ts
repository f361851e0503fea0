import { Tokenizer as TokenizersJsClass } from '@huggingface/tokenizers';
import { InvalidArgument } from '../../common/errors.js';
import { checkHfTokenizerJson } from './hf-tokenizer-json.js';
import { TokenByteDecoding } from './token-byte-decoding.js';
import type { EncodeOptions, Tokenizer } from './tokenizer.js';
import type { GenerationConfig, TokenizerConfig } from './tokenizer-config.js';

/**
 * The part of @huggingface/tokenizers' `Tokenizer` used here, typed by hand:
 * the package's .d.ts files import each other without extensions, which
 * NodeNext does not resolve, so TypeScript sees `any`.
 */
interface TokenizersJs {
  /** The BPE model; public, so that two tokenizers can share one. */
  model: unknown;
  encode(text: string, options: { add_special_tokens: boolean }): { ids: (number | undefined)[]; tokens: string[] };
  token_to_id(token: string): number | undefined;
}
const TokenizersJs: new (tokenizerJson: object, tokenizerConfig: object) => TokenizersJs = TokenizersJsClass;

/** Options of {@link HfTokenizer.encode}. */
export interface HfEncodeOptions extends EncodeOptions {
  /**
   * Put BOS before the text when {@link HfTokenizer.addBosToken}, and EOS after
   * it when {@link HfTokenizer.addEosToken}, as `tokenizer(text)` does in
   * transformers. Default false: a rendered chat template carries its own BOS.
   */
  addSpecialTokens?: boolean;
}

/** What an {@link HfTokenizer} is built from: the files of a Hugging Face model folder. */
export interface HfTokenizerFiles {
  /** Parsed `tokenizer.json`. */
  tokenizerJson: unknown;
  /** Its path, quoted in error messages. */
  tokenizerFile: string;
  /** `tokenizer_config.json`, when the folder has one: BOS, EOS, add_bos_token. */
  config?: TokenizerConfig;
  /** `generation_config.json`, when the folder has one: more EOS ids. */
  generation?: GenerationConfig;
}

/**
 * A Hugging Face `tokenizer.json` tokenizer (Llama 2/3, Mistral, Qwen, ...):
 * a BPE model with its normalizer, pre-tokenizer (ByteLevel, Metaspace,
 * Split, ...), byte fallback and added tokens, run by @huggingface/tokenizers
 * (pure JS). Its ids equal those of the Rust `tokenizers` for the same file
 * (tests/unit/model/tokenizer/hf-tokenizer.test.ts).
 *
 * Special tokens (added tokens marked `special`) are control tokens: text that
 * spells one is ordinary text unless `parseSpecialTokens` is set; they stand
 * for no bytes and {@link decode} leaves them out. Non-special added tokens
 * (Qwen's `<think>`) are always matched in text and stand for their own text.
 *
 * {@link decode} is the tokens' bytes as UTF-8 with the decoder's whole-text
 * edits: a SentencePiece tokenizer's prepended space is stripped, so
 * `decode(encode(x)) === x` wherever the Rust tokenizer round-trips too.
 * {@link tokenBytes} keeps that space: streamed text continuing a prompt needs it.
 */
export class HfTokenizer implements Tokenizer {
  /** Number of ids: the largest id + 1. */
  readonly vocabSize: number;
  /** End of sequence: tokenizer_config.json's `eos_token`, else generation_config.json's first `eos_token_id`. */
  readonly eosId: number;
  /** Every end-of-sequence id: {@link eosId} first, then generation_config.json's `eos_token_id` list. */
  readonly eosIds: readonly number[];
  /** tokenizer_config.json's `bos_token` (else the post-processor's first token), if any. */
  readonly bosId: number | undefined;
  /** Whether `encode(text, { addSpecialTokens: true })` puts {@link bosId} first. */
  readonly addBosToken: boolean;
  /** Whether `encode(text, { addSpecialTokens: true })` puts {@link eosId} last. */
  readonly addEosToken: boolean;
  /** Special token spelling -> id. */
  readonly specialTokens: ReadonlyMap<string, number>;

  /** Matches every added token in the text. */
  private readonly withSpecials: TokenizersJs;
  /** Matches only the non-special added tokens; shares the BPE model of {@link withSpecials}. */
  private readonly withoutSpecials: TokenizersJs;
  private readonly tokens: readonly (string | undefined)[];
  /** Id -> bytes, computed on first use (most of a 10^5 vocabulary is never decoded by a process). */
  private readonly bytes: (Uint8Array | undefined)[];
  private readonly isSpecial: Uint8Array;
  private readonly decoding: TokenByteDecoding;

  /** @throws InvalidArgument naming the file and field when a file is malformed or uses an unsupported setting. */
  constructor(files: HfTokenizerFiles) {
    const file = files.tokenizerFile;
    const json = checkHfTokenizerJson(files.tokenizerJson, file);
    this.decoding = TokenByteDecoding.fromDecoder(json.root['decoder'], file);
    // The JS tokenizer only encodes here: decoding and BOS/EOS are done below,
    // and tokenizer_config.json is left out so the ids depend on tokenizer.json
    // alone, as in the Rust tokenizers.
    const base = { normalizer: null, pre_tokenizer: null, ...json.root, added_tokens: json.addedTokens, post_processor: null, decoder: null };
    this.withSpecials = createTokenizer(base, file);
    this.withoutSpecials = createTokenizer(
      { ...base, added_tokens: json.addedTokens.filter((t) => !t.special), model: { type: 'BPE', vocab: {}, merges: [] } },
      file,
    );
    this.withoutSpecials.model = this.withSpecials.model;

    this.tokens = json.tokens;
    this.vocabSize = this.tokens.length;
    this.isSpecial = new Uint8Array(this.vocabSize);
    const specials = new Map<string, number>();
    for (const token of json.addedTokens) {
      if (!token.special) continue;
      this.isSpecial[token.id] = 1;
      specials.set(token.content, token.id);
    }
    this.specialTokens = specials;
    this.bytes = new Array<Uint8Array | undefined>(this.vocabSize);

    const config = files.config;
    const idOf = (token: string, where: string): number => {
      const id = this.tokenToId(token);
      if (id === undefined) throw new InvalidArgument(`${where}: ${JSON.stringify(token)} is not in the vocabulary of ${file}`);
      return id;
    };
    const configEos = config?.eosToken === undefined ? undefined : idOf(config.eosToken, `${config.file}: \`eos_token\``);
    const generationEos = files.generation?.eosTokenIds ?? [];
    for (const id of generationEos) {
      if (this.tokens[id] === undefined) {
        throw new InvalidArgument(`${files.generation!.file}: \`eos_token_id\` ${id} is not an id of ${file} (vocabulary size ${this.vocabSize})`);
      }
    }
    const eosIds = [...new Set([...(configEos === undefined ? [] : [configEos]), ...generationEos])];
    if (eosIds.length === 0) {
      throw new InvalidArgument(
        `${file}: no end-of-sequence token: expected \`eos_token\` in tokenizer_config.json or \`eos_token_id\` in generation_config.json beside it`,
      );
    }
    this.eosIds = eosIds;
    this.eosId = eosIds[0]!;

    const prefix = json.template.prefix.map((t) => idOf(t, `${file}: \`post_processor\``));
    const suffix = json.template.suffix.map((t) => idOf(t, `${file}: \`post_processor\``));
    this.bosId = config?.bosToken === undefined ? prefix[0] : idOf(config.bosToken, `${config.file}: \`bos_token\``);
    // transformers' Llama tokenizers rebuild the post-processor from add_bos_token /
    // add_eos_token; where the config is silent, tokenizer.json's template decides.
    this.addBosToken = config?.addBosToken ?? (this.bosId !== undefined && prefix[0] === this.bosId);
    this.addEosToken = config?.addEosToken ?? suffix.at(-1) === this.eosId;
    if (this.addBosToken && this.bosId === undefined) {
      throw new InvalidArgument(`${config!.file}: \`add_bos_token\` is true but there is no \`bos_token\``);
    }
  }

  /**
   * Text -> ids. Special tokens spelled in the text are ordinary text unless
   * `options.parseSpecialTokens`; no BOS/EOS is added unless `options.addSpecialTokens`.
   */
  encode(text: string, options: HfEncodeOptions = {}): number[] {
    const tokenizer = options.parseSpecialTokens ? this.withSpecials : this.withoutSpecials;
    const encoding = tokenizer.encode(text, { add_special_tokens: false });
    const ids = encoding.ids;
    const unknown = ids.indexOf(undefined);
    if (unknown !== -1) {
      // Not expected: checkHfTokenizerJson makes sure every character has a token.
      throw new InvalidArgument(`text contains ${JSON.stringify(encoding.tokens[unknown])}, which the vocabulary cannot encode`);
    }
    if (!options.addSpecialTokens) return ids as number[];
    const out = ids as number[];
    if (this.addBosToken) out.unshift(this.bosId!);
    if (this.addEosToken) out.push(this.eosId);
    return out;
  }

  /** Ids -> text; special tokens contribute nothing, invalid UTF-8 becomes U+FFFD. */
  decode(ids: readonly number[]): string {
    const tokens: string[] = [];
    const bytes: Uint8Array[] = [];
    ids.forEach((id, i) => {
      const token = this.tokenOf(id, i);
      if (token === undefined || this.isSpecial[id] === 1) return;
      tokens.push(token);
      bytes.push(this.bytesOf(id));
    });
    return this.decoding.decode(tokens, bytes);
  }

  /**
   * The bytes token `id` stands for (a copy): `<0x41>` is byte 0x41, `▁` a
   * space, a ByteLevel token its bytes; empty for special tokens and unused ids.
   */
  tokenBytes(id: number): Uint8Array {
    this.tokenOf(id, undefined);
    return this.bytesOf(id).slice();
  }

  /** The id of a vocabulary spelling or added token, or undefined. */
  tokenToId(token: string): number | undefined {
    return this.withSpecials.token_to_id(token);
  }

  /** The spelling of `id`, or undefined for an unused id. */
  idToToken(id: number): string | undefined {
    return this.tokens[id];
  }

  /** Bytes of a valid id, cached. */
  private bytesOf(id: number): Uint8Array {
    let bytes = this.bytes[id];
    if (bytes === undefined) {
      const token = this.tokens[id];
      bytes = token === undefined || this.isSpecial[id] === 1 ? new Uint8Array(0) : this.decoding.tokenBytes(token);
      this.bytes[id] = bytes;
    }
    return bytes;
  }

  private tokenOf(id: number, index: number | undefined): string | undefined {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      const field = index === undefined ? 'token id' : `\`ids[${index}]\``;
      throw new InvalidArgument(`${field} must be an integer in [0, ${this.vocabSize}), got ${id}`);
    }
    return this.tokens[id];
  }
}

function createTokenizer(json: Record<string, unknown>, file: string): TokenizersJs {
  try {
    return new TokenizersJs(json, {});
  } catch (err) {
    // Unknown component types, and Split patterns that do not translate to a JS RegExp.
    throw new InvalidArgument(`${file}: cannot build the tokenizer: ${(err as Error).message}`, { cause: err });
  }
}
