import { test } from 'node:test';
import assert from 'node:assert/strict';
import { invalidUtf8At } from '../../../src/common/utf8.js';

test('invalidUtf8At: 0 for valid text, else the 1-based start of the first bad sequence', () => {
  const cases: [number[], number][] = [
    [[], 0],
    [[...Buffer.from('héllo €𝄞', 'utf8')], 0],
    [[0x61, 0xff, 0x62], 2], // a byte no UTF-8 has
    [[0x61, 0x80], 2], // a continuation byte with no lead
    [[0xc0, 0xaf], 1], // overlong "/"
    [[0xe0, 0x80, 0xaf], 1], // overlong, 3 bytes
    [[0xed, 0xa0, 0x80], 1], // a UTF-16 surrogate (U+D800)
    [[0xf4, 0x90, 0x80, 0x80], 1], // above U+10FFFF
    [[0x61, 0x62, 0xe2, 0x82], 3], // cut short at the end
    [[0xe2, 0x82, 0xac, 0xe2, 0x28, 0xa1], 4], // valid €, then a bad second byte
  ];
  for (const [bytes, at] of cases) assert.equal(invalidUtf8At(Uint8Array.from(bytes)), at, JSON.stringify(bytes));
  // It agrees with a fatal TextDecoder on every 2-byte string.
  const fatal = new TextDecoder('utf-8', { fatal: true });
  for (let a = 0; a < 256; a++) {
    for (let b = 0; b < 256; b += 3) {
      const bytes = Uint8Array.of(a, b);
      let valid = true;
      try {
        fatal.decode(bytes);
      } catch {
        valid = false;
      }
      assert.equal(invalidUtf8At(bytes) === 0, valid, `${a} ${b}`);
    }
  }
});
