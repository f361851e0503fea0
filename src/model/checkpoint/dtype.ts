/**
 * Conversions between float32 and the 16-bit float formats checkpoints use:
 * IEEE 754 binary16 (`F16`) and bfloat16 (`BF16`, the top half of a float32).
 * Arrays hold raw bit patterns (Uint16Array) in host byte order; the file
 * readers and writers deal with byte order.
 *
 * Narrowing rounds to nearest, ties to even, like numpy's `astype(float16)`
 * and torch's `.to(torch.bfloat16)`: values past the largest finite value
 * (after rounding) become infinity, tiny values become subnormals or signed
 * zero, and NaN stays a (quiet) NaN with its sign.
 */

/** float16 bits -> float32 bits, for every one of the 65536 patterns; built on first use (256 KiB). */
let f16Table: Uint32Array | undefined;

function float16Table(): Uint32Array {
  if (f16Table) return f16Table;
  const table = new Uint32Array(65536);
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >>> 10) & 0x1f;
    const man = h & 0x3ff;
    if (exp === 0) {
      // Zero or subnormal: man * 2^-24 is exact in float32.
      f32[0] = man * 5.960464477539063e-8;
      table[h] = (sign | u32[0]) >>> 0;
    } else if (exp === 0x1f) {
      table[h] = (sign | 0x7f800000 | (man << 13)) >>> 0;
    } else {
      table[h] = (sign | ((exp + 112) << 23) | (man << 13)) >>> 0;
    }
  }
  f16Table = table;
  return table;
}

function bitsOf(src: Float32Array): Uint32Array {
  return new Uint32Array(src.buffer, src.byteOffset, src.length);
}

function checkLength(what: string, src: { length: number }, out: { length: number }): void {
  if (out.length !== src.length) {
    throw new RangeError(`${what}: output has ${out.length} elements, input has ${src.length}`);
  }
}

/** Rounds one float32 bit pattern to float16 bits (nearest, ties to even). */
export function float32BitsToFloat16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const abs = x & 0x7fffffff;
  if (abs >= 0x7f800000) {
    // Infinity, or NaN: keep the top payload bits and force the quiet bit so it stays NaN.
    return abs === 0x7f800000 ? sign | 0x7c00 : sign | 0x7e00 | ((abs >>> 13) & 0x3ff);
  }
  if (abs >= 0x47800000) return sign | 0x7c00; // >= 65536: beyond even the rounding range of 65504
  if (abs < 0x38800000) {
    // Below 2^-14, the smallest normal float16: result is man * 2^-24.
    const exp = abs >>> 23;
    const shift = 126 - exp; // >= 14
    if (shift > 24) return sign; // < 2^-25 rounds to zero (2^-25 itself is a tie, to even zero)
    const man = (abs & 0x7fffff) | 0x800000;
    let q = man >>> shift;
    const rem = man & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (q & 1) !== 0)) q++; // may carry into the smallest normal: right
    return sign | q;
  }
  // Normal: rebias the exponent (127 -> 15), drop 13 mantissa bits, round.
  // Adding 0xfff plus the lowest kept bit rounds half to even; a carry out of
  // 0x7bff gives 0x7c00, infinity, as it should.
  return sign | ((abs - 0x38000000 + 0xfff + ((abs >>> 13) & 1)) >>> 13);
}

/** Rounds one float32 bit pattern to bfloat16 bits (nearest, ties to even). */
export function float32BitsToBfloat16Bits(x: number): number {
  x >>>= 0;
  if ((x & 0x7fffffff) > 0x7f800000) return (x >>> 16) | 0x40; // NaN: stay NaN even if the payload was low
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/**
 * Narrows float32 values to float16 bit patterns. `out` (same length) is
 * filled if given, else a new array is returned.
 */
export function float32ToFloat16(src: Float32Array, out = new Uint16Array(src.length)): Uint16Array {
  checkLength('float32ToFloat16', src, out);
  const bits = bitsOf(src);
  for (let i = 0; i < bits.length; i++) out[i] = float32BitsToFloat16Bits(bits[i]);
  return out;
}

/** Widens float16 bit patterns to float32 (exact). */
export function float16ToFloat32(src: Uint16Array, out = new Float32Array(src.length)): Float32Array {
  checkLength('float16ToFloat32', src, out);
  const table = float16Table();
  const bits = bitsOf(out);
  for (let i = 0; i < src.length; i++) bits[i] = table[src[i]];
  return out;
}

/** Narrows float32 values to bfloat16 bit patterns. */
export function float32ToBfloat16(src: Float32Array, out = new Uint16Array(src.length)): Uint16Array {
  checkLength('float32ToBfloat16', src, out);
  const bits = bitsOf(src);
  for (let i = 0; i < bits.length; i++) out[i] = float32BitsToBfloat16Bits(bits[i]);
  return out;
}

/** Widens bfloat16 bit patterns to float32 (exact). */
export function bfloat16ToFloat32(src: Uint16Array, out = new Float32Array(src.length)): Float32Array {
  checkLength('bfloat16ToFloat32', src, out);
  const bits = bitsOf(out);
  for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
  return out;
}
