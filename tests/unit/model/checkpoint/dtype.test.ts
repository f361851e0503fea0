import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  bfloat16ToFloat32,
  float16ToFloat32,
  float32ToBfloat16,
  float32ToFloat16,
} from '../../../../src/model/checkpoint/dtype.js';

const f32 = (bits: number): number => new Float32Array(new Uint32Array([bits >>> 0]).buffer)[0];
const toF16 = (x: number): number => float32ToFloat16(new Float32Array([x]))[0];
const fromF16 = (h: number): number => float16ToFloat32(new Uint16Array([h]))[0];
const toBf16Bits = (bits: number): number => float32ToBfloat16(new Float32Array([f32(bits)]))[0];

function python(code: string, input = ''): string {
  const r = spawnSync('/usr/bin/python3', ['-c', code], { input, maxBuffer: 1 << 28, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

test('float16: known bit patterns', () => {
  const cases: Array<[number, number]> = [
    [0, 0x0000],
    [-0, 0x8000],
    [1, 0x3c00],
    [-2, 0xc000],
    [0.5, 0x3800],
    [65504, 0x7bff], // largest finite
    [2 ** -14, 0x0400], // smallest normal
    [1023 * 2 ** -24, 0x03ff], // largest subnormal
    [2 ** -24, 0x0001], // smallest subnormal
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
  ];
  for (const [x, bits] of cases) {
    assert.equal(toF16(x), bits, `${x} -> 0x${bits.toString(16)}`);
    assert.ok(Object.is(fromF16(bits), x), `0x${bits.toString(16)} -> ${x}`);
  }
  // Inexact values round to the nearest float16.
  assert.equal(toF16(0.1), 0x2e66);
  assert.equal(fromF16(0x2e66), 0.0999755859375);
  assert.equal(toF16(1 / 3), 0x3555);
});

test('float16: rounding to nearest, ties to even, overflow and underflow', () => {
  assert.equal(toF16(1 + 2 ** -11), 0x3c00, 'tie between 1 and next rounds down to even');
  assert.equal(toF16(1 + 3 * 2 ** -11), 0x3c02, 'tie rounds up to even');
  assert.equal(toF16(f32(0x3f801001)), 0x3c01, 'just above a tie rounds up');
  assert.equal(toF16(2049), 0x6800); // 2048
  assert.equal(toF16(2051), 0x6802); // 2052
  assert.equal(toF16(65519), 0x7bff, 'below 65520 stays finite');
  assert.equal(toF16(65520), 0x7c00, '65520 is a tie with an odd 65504: rounds to infinity');
  assert.equal(toF16(-1e6), 0xfc00);
  assert.equal(toF16(3.4e38), 0x7c00);
  assert.equal(toF16(2 ** -25), 0x0000, '2^-25 is a tie with zero: rounds to even zero');
  assert.equal(toF16(-(2 ** -25)), 0x8000, 'keeps the sign of zero');
  assert.equal(toF16(f32(0x33000001)), 0x0001, 'just above 2^-25 rounds up to the smallest subnormal');
  assert.equal(toF16(3 * 2 ** -25), 0x0002, 'subnormal tie rounds to even');
  assert.equal(toF16(5 * 2 ** -25), 0x0002);
  assert.equal(toF16(2 ** -14 - 2 ** -26), 0x0400, 'rounding carries a subnormal into the smallest normal');
  assert.equal(toF16(1e-10), 0);
  assert.equal(toF16(f32(1)), 0, 'float32 subnormals become zero');
  const nan = toF16(NaN);
  assert.equal(nan & 0x7c00, 0x7c00);
  assert.notEqual(nan & 0x3ff, 0);
  assert.equal(toF16(f32(0x7f800001)) & 0x7fff, 0x7e00, 'a low-payload NaN stays NaN');
  assert.equal(toF16(f32(0xffc00000)), 0xfe00, 'sign of NaN kept');
  assert.ok(Number.isNaN(fromF16(0x7e00)));
  assert.ok(Number.isNaN(fromF16(0x7c01)));
});

test('float16: every pattern widens exactly, and narrowing agrees with numpy on random float32', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const wide = float16ToFloat32(all);
  const expected = new Float32Array(
    Buffer.from(python(
      'import numpy as np,sys; sys.stdout.write(np.arange(65536,dtype=np.uint16).view(np.float16).astype(np.float32).tobytes().hex())',
    ), 'hex').buffer.slice(0),
  );
  for (let i = 0; i < 65536; i++) {
    if (Number.isNaN(expected[i])) assert.ok(Number.isNaN(wide[i]), `0x${i.toString(16)}`);
    else assert.ok(Object.is(wide[i], expected[i]), `0x${i.toString(16)}: ${wide[i]} vs ${expected[i]}`);
  }
  // Round trip of every non-NaN pattern.
  const back = float32ToFloat16(wide);
  for (let i = 0; i < 65536; i++) if (!Number.isNaN(wide[i])) assert.equal(back[i], i);

  // Random bit patterns, biased towards the float16 range, against numpy's astype(float16).
  const n = 200_000;
  const bits = new Uint32Array(n);
  let s = 12345;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const r = (s ^ (s >>> 13) ^ Math.imul(i, 0x9e3779b1)) >>> 0;
    // Exponents 100..145 (around float16's range) for most, anything for the rest.
    bits[i] = i % 4 === 0 ? r : ((r & 0x807fffff) | ((100 + (r % 46)) << 23)) >>> 0;
  }
  const mine = float32ToFloat16(new Float32Array(bits.buffer));
  const hex = python(
    'import numpy as np,sys; a=np.frombuffer(bytes.fromhex(sys.stdin.read()),dtype="<u4").view(np.float32)\n' +
      'import warnings; warnings.simplefilter("ignore")\n' +
      'sys.stdout.write(a.astype(np.float16).view("<u2").tobytes().hex())',
    Buffer.from(bits.buffer).toString('hex'),
  );
  const theirs = new Uint16Array(Buffer.from(hex, 'hex').buffer.slice(0));
  for (let i = 0; i < n; i++) {
    const nanBoth = (mine[i] & 0x7c00) === 0x7c00 && (mine[i] & 0x3ff) !== 0 && (theirs[i] & 0x7c00) === 0x7c00 && (theirs[i] & 0x3ff) !== 0;
    if (!nanBoth) assert.equal(mine[i], theirs[i], `0x${bits[i].toString(16)}`);
  }
});

test('bfloat16: known bit patterns and rounding', () => {
  assert.equal(toBf16Bits(0x3f800000), 0x3f80); // 1
  assert.equal(toBf16Bits(0x40400000), 0x4040); // 3
  assert.equal(toBf16Bits(0x40490fdb), 0x4049); // pi, rounds down
  assert.equal(toBf16Bits(0x3f808000), 0x3f80, 'tie rounds to even (down)');
  assert.equal(toBf16Bits(0x3f818000), 0x3f82, 'tie rounds to even (up)');
  assert.equal(toBf16Bits(0x3f808001), 0x3f81, 'above a tie rounds up');
  assert.equal(toBf16Bits(0x7f7fffff), 0x7f80, 'max float32 rounds to infinity');
  assert.equal(toBf16Bits(0x7f7f7fff), 0x7f7f, 'largest finite bfloat16 stays');
  assert.equal(toBf16Bits(0x00008000), 0x0000, 'subnormal tie to even zero');
  assert.equal(toBf16Bits(0x00018000), 0x0002);
  assert.equal(toBf16Bits(0x80000000), 0x8000);
  assert.equal(toBf16Bits(0xff800000), 0xff80);
  assert.equal(toBf16Bits(0x7f800001), 0x7fc0, 'low-payload NaN stays NaN');
  assert.equal(toBf16Bits(0xffc00000), 0xffc0);
  const wide = bfloat16ToFloat32(new Uint16Array([0x3f80, 0xc000, 0x7f80, 0x0001, 0x7fc0, 0x8000]));
  assert.deepEqual([...wide.slice(0, 4)], [1, -2, Infinity, f32(0x00010000)]);
  assert.ok(Number.isNaN(wide[4]));
  assert.ok(Object.is(wide[5], -0));
});

test('bfloat16 round trip is exact for every pattern; conversions reject a wrong-size output', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const back = float32ToBfloat16(bfloat16ToFloat32(all));
  for (let i = 0; i < 65536; i++) {
    const isNan = (i & 0x7f80) === 0x7f80 && (i & 0x7f) !== 0;
    if (isNan) assert.equal(back[i] & 0x7fc0, 0x7fc0);
    else assert.equal(back[i], i);
  }
  assert.throws(() => float32ToFloat16(new Float32Array(3), new Uint16Array(2)), RangeError);
  assert.throws(() => bfloat16ToFloat32(new Uint16Array(3), new Float32Array(4)), RangeError);
});

test('conversions work on subarray views', () => {
  const big = new Float32Array([9, 1, 2, 9]);
  assert.deepEqual([...float32ToFloat16(big.subarray(1, 3))], [0x3c00, 0x4000]);
  const halves = new Uint16Array([0, 0x3c00, 0x4000, 0]);
  assert.deepEqual([...float16ToFloat32(halves.subarray(1, 3))], [1, 2]);
});
