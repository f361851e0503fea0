/**
 * GPT-2's `bytes_to_unicode` table (openai/gpt-2 `encoder.py`): every byte 0..255
 * gets a printable Unicode character so that byte-level BPE tokens can live in a
 * JSON vocabulary as ordinary strings. Printable Latin-1 bytes map to themselves;
 * the other 68 bytes (controls, space, NBSP, soft hyphen) map to U+0100 onwards
 * in byte order, which is why a space reads as `Ġ` (U+0120) in vocab files.
 */

function isPrintable(b: number): boolean {
  return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
}

function buildByteOrder(): number[] {
  const printable: number[] = [];
  const rest: number[] = [];
  for (let b = 0; b < 256; b++) (isPrintable(b) ? printable : rest).push(b);
  return [...printable, ...rest];
}

function buildByteToUnicode(): string[] {
  const table: string[] = new Array<string>(256);
  let shifted = 0;
  for (let b = 0; b < 256; b++) {
    table[b] = String.fromCharCode(isPrintable(b) ? b : 256 + shifted++);
  }
  return table;
}

/**
 * The 256 bytes in the order GPT-2 gives them ids 0..255 in its vocabulary
 * (printable bytes first, then the remapped ones). Trainers use it so that the
 * first 256 ids of a new vocabulary match GPT-2's.
 */
export const GPT2_BYTE_ORDER: readonly number[] = buildByteOrder();

/** `BYTE_TO_UNICODE[b]` is the one-character string standing for byte `b`. */
export const BYTE_TO_UNICODE: readonly string[] = buildByteToUnicode();

/** The inverse of {@link BYTE_TO_UNICODE}: one-character string -> byte. */
export const UNICODE_TO_BYTE: ReadonlyMap<string, number> = new Map(
  BYTE_TO_UNICODE.map((ch, b) => [ch, b] as const),
);

/** Bytes -> their vocabulary spelling (one character per byte). */
export function bytesToUnicode(bytes: ArrayLike<number>): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += BYTE_TO_UNICODE[bytes[i]!]!;
  return out;
}

/**
 * A vocabulary spelling -> its bytes, or `undefined` when some character is
 * outside the byte alphabet (e.g. an added token such as `<|endoftext|>`).
 */
export function unicodeToBytes(token: string): Uint8Array | undefined {
  const out = new Uint8Array(token.length);
  for (let i = 0; i < token.length; i++) {
    const b = UNICODE_TO_BYTE.get(token[i]!);
    if (b === undefined) return undefined;
    out[i] = b;
  }
  return out;
}
