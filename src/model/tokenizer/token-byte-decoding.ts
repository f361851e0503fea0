import { InvalidArgument } from '../../common/errors.js';
import { unicodeToBytes } from './bytes-to-unicode.js';
import { isObject } from './json-file.js';

const utf8Encoder = new TextEncoder();
// ignoreBOM keeps a leading U+FEFF, as ByteLevelBpe does.
const utf8Decoder = new TextDecoder('utf-8', { ignoreBOM: true });

/** `<0x41>`: a byte-fallback token (tokenizers' `ByteFallback` decoder accepts either case). */
const BYTE_TOKEN = /^<0x[0-9A-Fa-f]{2}>$/;

/**
 * How a `tokenizer.json` `decoder` turns tokens back into bytes, reduced to
 * what gentune needs: the bytes of each token on its own (for streaming and
 * constrained decoding), plus the few text-level edits the decoder makes to a
 * whole sequence. Two families are supported:
 *
 * - `ByteLevel` (GPT-2, Llama 3, Qwen): each character of a token stands for
 *   one byte (GPT-2's byte-to-unicode alphabet); a token with a character
 *   outside the alphabet stands for its own UTF-8, as in tokenizers' decoder.
 * - SentencePiece style (Llama 2, Mistral): a `Metaspace` decoder, or a
 *   `Sequence` of `Replace` (a string for a string, e.g. `▁` -> space),
 *   `ByteFallback` (`<0x0A>` -> byte 0x0A), `Fuse` and `Strip`; a token stands
 *   for its text after the replacements, in UTF-8.
 *
 * Anything else (WordPiece, CTC, a `Strip` before `Fuse`, regex replacements)
 * is rejected at load: its bytes would be guesses.
 */
export class TokenByteDecoding {
  private constructor(
    private readonly byteLevel: boolean,
    /** Replace steps (pattern -> content), in order. */
    private readonly replacements: ReadonlyArray<readonly [string, string]>,
    private readonly byteFallback: boolean,
    /** Metaspace decoder: the replacement character, dropped from the first token (not made a space). */
    private readonly firstTokenDrops: string | undefined,
    /** Strip after Fuse: the character, and at most how many of it go from the start and the end of the text. */
    private readonly strip: { content: string; start: number; stop: number } | undefined,
  ) {}

  /**
   * Reads `decoder` of tokenizer.json.
   *
   * @throws InvalidArgument naming `file` and the decoder field when it is missing or not supported.
   */
  static fromDecoder(decoder: unknown, file: string): TokenByteDecoding {
    if (!isObject(decoder)) {
      throw new InvalidArgument(`${file}: \`decoder\` must be an object (it tells what bytes the tokens stand for), got ${JSON.stringify(decoder ?? null)}`);
    }
    const type = decoder['type'];
    if (type === 'ByteLevel') return new TokenByteDecoding(true, [], false, undefined, undefined);
    if (type === 'Metaspace') {
      const replacement = metaspaceReplacement(decoder, file, 'decoder');
      // tokenizers' Metaspace decoder drops the replacement characters of the first
      // token unless prepend_scheme is "never" (legacy: add_prefix_space false).
      const prepends = decoder['prepend_scheme'] !== 'never' && decoder['add_prefix_space'] !== false;
      return new TokenByteDecoding(false, [[replacement, ' ']], false, prepends ? replacement : undefined, undefined);
    }
    if (type !== 'Sequence') {
      throw new InvalidArgument(`${file}: \`decoder.type\` ${JSON.stringify(type ?? null)} is not supported (ByteLevel, Metaspace, or a Sequence of Replace, ByteFallback, Fuse, Strip)`);
    }
    const steps = decoder['decoders'];
    if (!Array.isArray(steps)) throw new InvalidArgument(`${file}: \`decoder.decoders\` must be a list`);
    const replacements: Array<[string, string]> = [];
    let byteFallback = false;
    let fused = false;
    let strip: { content: string; start: number; stop: number } | undefined;
    steps.forEach((step: unknown, i) => {
      const field = `decoder.decoders[${i}]`;
      const stepType = isObject(step) ? step['type'] : undefined;
      if (!isObject(step) || typeof stepType !== 'string') throw new InvalidArgument(`${file}: \`${field}\` must be an object with a \`type\``);
      if (stepType === 'Replace') {
        const pattern = step['pattern'];
        const content = step['content'];
        if (!isObject(pattern) || typeof pattern['String'] !== 'string' || pattern['String'] === '' || typeof content !== 'string') {
          throw new InvalidArgument(`${file}: \`${field}\` (Replace) must replace a {"String": ...} pattern with a string`);
        }
        replacements.push([pattern['String'], content]);
      } else if (stepType === 'ByteFallback') byteFallback = true;
      else if (stepType === 'Fuse') fused = true;
      else if (stepType === 'Strip') {
        const { content, start, stop } = step;
        if (!fused || typeof content !== 'string' || [...content].length !== 1 || !isCount(start) || !isCount(stop)) {
          throw new InvalidArgument(`${file}: \`${field}\` (Strip) is supported after Fuse, with one \`content\` character and counts \`start\`, \`stop\``);
        }
        strip = { content, start, stop };
      } else {
        throw new InvalidArgument(`${file}: \`${field}.type\` ${JSON.stringify(stepType)} is not supported in a decoder Sequence (Replace, ByteFallback, Fuse, Strip)`);
      }
    });
    return new TokenByteDecoding(false, replacements, byteFallback, undefined, strip);
  }

  /** The bytes `token` (a vocabulary spelling or an added token's content) stands for. */
  tokenBytes(token: string): Uint8Array {
    if (this.byteLevel) return unicodeToBytes(token) ?? utf8Encoder.encode(token);
    if (this.byteFallback && BYTE_TOKEN.test(token)) return Uint8Array.of(Number.parseInt(token.slice(3, 5), 16));
    return utf8Encoder.encode(this.replace(token));
  }

  /**
   * The text of a token sequence (special tokens already left out), given each
   * token's spelling and bytes: the bytes as UTF-8 (invalid sequences become
   * U+FFFD, as in a streaming decode), then the decoder's whole-text edits: a
   * Metaspace decoder's first token loses its replacement characters, and
   * `Strip` removes the leading space a SentencePiece tokenizer prepended.
   */
  decode(tokens: readonly string[], bytes: readonly Uint8Array[]): string {
    let length = 0;
    const parts = bytes.slice();
    if (this.firstTokenDrops !== undefined && tokens.length > 0) {
      parts[0] = utf8Encoder.encode(this.replace(tokens[0]!.replaceAll(this.firstTokenDrops, '')));
    }
    for (const part of parts) length += part.length;
    const all = new Uint8Array(length);
    let at = 0;
    for (const part of parts) {
      all.set(part, at);
      at += part.length;
    }
    const text = utf8Decoder.decode(all);
    return this.strip === undefined ? text : stripText(text, this.strip);
  }

  private replace(token: string): string {
    let text = token;
    for (const [pattern, content] of this.replacements) text = text.replaceAll(pattern, content);
    return text;
  }
}

/** The `replacement` of a Metaspace pre-tokenizer or decoder: one character (tokenizers requires it). */
export function metaspaceReplacement(config: Record<string, unknown>, file: string, field: string): string {
  const replacement = config['replacement'];
  if (typeof replacement !== 'string' || [...replacement].length !== 1) {
    throw new InvalidArgument(`${file}: \`${field}.replacement\` must be one character (${field}.type "Metaspace"), got ${JSON.stringify(replacement ?? null)}`);
  }
  return replacement;
}

function stripText(text: string, strip: { content: string; start: number; stop: number }): string {
  const { content, start, stop } = strip;
  let begin = 0;
  for (let i = 0; i < start && text.startsWith(content, begin); i++) begin += content.length;
  let end = text.length;
  for (let i = 0; i < stop && end - content.length >= begin && text.startsWith(content, end - content.length); i++) end -= content.length;
  return text.slice(begin, end);
}

function isCount(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 0;
}
