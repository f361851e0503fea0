import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BYTE_TO_UNICODE,
  GPT2_BYTE_ORDER,
  UNICODE_TO_BYTE,
  bytesToUnicode,
  unicodeToBytes,
} from '../../../../src/model/tokenizer/bytes-to-unicode.js';

test("bytes_to_unicode matches GPT-2's table", () => {
  assert.equal(BYTE_TO_UNICODE[0x20], 'Ġ');
  assert.equal(BYTE_TO_UNICODE[0x0a], 'Ċ');
  assert.equal(BYTE_TO_UNICODE[0x00], '\u0100');
  assert.equal(BYTE_TO_UNICODE[0x41], 'A');
  assert.equal(BYTE_TO_UNICODE[0xad], '\u0143');
  assert.equal(new Set(BYTE_TO_UNICODE).size, 256);
  assert.equal(UNICODE_TO_BYTE.size, 256);
  assert.deepEqual(GPT2_BYTE_ORDER.slice(0, 3), [0x21, 0x22, 0x23]);
  assert.deepEqual([...GPT2_BYTE_ORDER].sort((a, b) => a - b), Array.from({ length: 256 }, (_, b) => b));
});

test('bytes round-trip through their unicode spelling', () => {
  const all = Uint8Array.from({ length: 256 }, (_, b) => b);
  assert.deepEqual(unicodeToBytes(bytesToUnicode(all)), all);
  assert.equal(bytesToUnicode(Buffer.from(' hello')), 'Ġhello');
  assert.equal(unicodeToBytes('Ġ中'), undefined);
});
