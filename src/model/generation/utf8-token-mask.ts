/**
 * Keeps constrained output valid UTF-8. xgrammar matches bytes leniently: it
 * lets a byte-level vocabulary spell overlong forms (C0 80), surrogates
 * (ED A0 80) and code points past U+10FFFF, which decode to U+FFFD, one per
 * bad byte, so a string the grammar counted as 3 characters could decode to
 * 5 and break `maxLength`. Real models rarely pick such bytes; a random test
 * model picks them often. This mask allows only tokens whose bytes continue
 * valid UTF-8 from the sequence's current decoder state (RFC 3629, table 3-7
 * of the Unicode standard).
 *
 * It also refuses raw control characters (bytes 00..1F). JSON never allows
 * them inside strings (RFC 8259 section 7), and the one-line layout of
 * grammar-cache.ts puts no tab or newline between tokens, so no valid output
 * contains one; but xgrammar 0.1.27 compiles `maxLength` / `minLength` to
 * `[^"\\\r\n]{0,n}`, which lets them through, and JSON.parse then fails.
 */

/**
 * Decoder states, named by what the next byte must be: 0 = a new character;
 * otherwise the continuation bytes still needed and the range of the next one.
 */
const STATES: readonly { need: number; lo: number; hi: number }[] = [
  { need: 0, lo: 0, hi: 0 },
  { need: 1, lo: 0x80, hi: 0xbf },
  { need: 2, lo: 0x80, hi: 0xbf },
  { need: 2, lo: 0xa0, hi: 0xbf }, // after E0: no overlong 3-byte forms
  { need: 2, lo: 0x80, hi: 0x9f }, // after ED: no surrogates
  { need: 3, lo: 0x80, hi: 0xbf },
  { need: 3, lo: 0x90, hi: 0xbf }, // after F0: no overlong 4-byte forms
  { need: 3, lo: 0x80, hi: 0x8f }, // after F4: nothing past U+10FFFF
];

/** The state after byte `b` in state `s`, or -1 when `b` cannot follow. */
export function utf8Step(s: number, b: number): number {
  if (s !== 0) {
    const { need, lo, hi } = STATES[s];
    if (b < lo || b > hi) return -1;
    return need === 1 ? 0 : need === 2 ? 1 : 2;
  }
  if (b < 0x20) return -1; // a raw control character: never valid in our JSON
  if (b < 0x80) return 0;
  if (b >= 0xc2 && b <= 0xdf) return 1;
  if (b === 0xe0) return 3;
  if (b === 0xed) return 4;
  if (b >= 0xe1 && b <= 0xef) return 2;
  if (b === 0xf0) return 6;
  if (b >= 0xf1 && b <= 0xf3) return 5;
  if (b === 0xf4) return 7;
  return -1; // 80..BF without a lead byte, C0, C1, F5..FF
}

/** The state after a token's bytes, or -1 when they break UTF-8. */
export function utf8After(s: number, bytes: Uint8Array): number {
  for (const b of bytes) {
    s = utf8Step(s, b);
    if (s < 0) return -1;
  }
  return s;
}

/** Per decoder state, the bitmask (xgrammar's layout: bit i of word i>>5) of tokens that keep UTF-8 valid and control-free. */
export class Utf8TokenMask {
  private readonly masks: (Int32Array | undefined)[] = new Array(STATES.length);

  constructor(
    /** Each token's bytes (empty for special tokens: always allowed here, the grammar decides). */
    private readonly tokenBytes: readonly Uint8Array[],
    /** Width of the mask in token ids (the logits width). */
    private readonly width: number,
  ) {}

  /** The mask of state `s`, computed on first use (one pass over the vocabulary). */
  mask(s: number): Int32Array {
    const cached = this.masks[s];
    if (cached) return cached;
    const m = new Int32Array(Math.ceil(this.width / 32));
    for (let id = 0; id < this.tokenBytes.length; id++) {
      const bytes = this.tokenBytes[id];
      if (bytes.length === 0 || utf8After(s, bytes) >= 0) m[id >> 5] |= 1 << (id & 31);
    }
    this.masks[s] = m;
    return m;
  }

  /** The state after token `id`, from state `s` (-1 when the token broke UTF-8). */
  next(s: number, id: number): number {
    const bytes = this.tokenBytes[id];
    return bytes === undefined ? s : utf8After(s, bytes);
  }
}
