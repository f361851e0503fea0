import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../../../src/common/rng.js';
import { packSequences } from '../../../../src/training/data/packing.js';
import { tokenizeExample, type TokenizedExample } from '../../../../src/training/data/tokenize-example.js';
import { ByteTokenizer, EOS } from './byte-tokenizer.js';

const tokenizer = new ByteTokenizer();

/** A prompt/completion example of `length` tokens (EOS included), on `line`. */
function example(length: number, line: number): TokenizedExample {
  const promptLength = Math.floor((length - 1) / 2);
  return tokenizeExample(
    {
      line,
      example: {
        kind: 'prompt_completion',
        prompt: 'p'.repeat(promptLength),
        completion: String.fromCharCode(97 + (line % 26)).repeat(length - 1 - promptLength),
      },
    },
    tokenizer,
    { maxSeqLen: 1024 },
  );
}

test('packs greedily (best fit, longest first) into sequences of at most max_seq_len', () => {
  const lengths = [5, 3, 4, 2, 6, 2]; // lines 1..6
  const examples = lengths.map((n, i) => example(n, i + 1));
  const packed = packSequences(examples, 8);
  // 6 then 5 then 4 open rows; 3 fills the 5's row exactly, the first 2 the 6's,
  // the last 2 goes with the 4: three rows instead of six.
  assert.deepEqual(
    packed.map((p) => p.lines),
    [
      [5, 4],
      [1, 2],
      [3, 6],
    ],
  );
  assert.deepEqual(
    packed.map((p) => p.ids.length),
    [8, 8, 6],
  );
});

test('packed rows keep each example separated by EOS with its mask and a segment id', () => {
  const a = example(4, 1);
  const b = example(3, 2);
  const [row] = packSequences([a, b], 10);
  assert.deepEqual([...row.ids], [...a.ids, ...b.ids]);
  assert.equal(row.ids[a.ids.length - 1], EOS);
  assert.deepEqual([...row.lossMask], [...a.lossMask, ...b.lossMask]);
  // The first token of the second example is never a loss target: no loss crosses the boundary.
  assert.equal(row.lossMask[a.ids.length], 0);
  assert.deepEqual([...row.segmentIds], [1, 1, 1, 1, 2, 2, 2]);
});

test('every example lands in exactly one row, unchanged, and rows fit', () => {
  const rng = new Rng(3);
  const examples = Array.from({ length: 300 }, (_, i) => example(2 + rng.int(60), i + 1));
  const maxSeqLen = 64;
  const packed = packSequences(examples, maxSeqLen);
  const byLine = new Map(examples.map((e) => [e.line, e]));
  const seen: number[] = [];
  for (const row of packed) {
    assert.ok(row.ids.length <= maxSeqLen);
    let offset = 0;
    row.lines.forEach((line, k) => {
      const e = byLine.get(line)!;
      const end = offset + e.ids.length;
      assert.deepEqual([...row.ids.subarray(offset, end)], [...e.ids]);
      assert.deepEqual([...row.lossMask.subarray(offset, end)], [...e.lossMask]);
      assert.ok(row.segmentIds.subarray(offset, end).every((s) => s === k + 1));
      offset = end;
      seen.push(line);
    });
    assert.equal(offset, row.ids.length);
  }
  assert.deepEqual(
    seen.sort((x, y) => x - y),
    examples.map((e) => e.line),
  );
  const tokens = examples.reduce((n, e) => n + e.ids.length, 0);
  // No packing beats either bound: total tokens, and one row per example over half a row.
  const lowerBound = Math.max(
    Math.ceil(tokens / maxSeqLen),
    examples.filter((e) => e.ids.length > maxSeqLen / 2).length,
  );
  // Best-fit decreasing comes close; without packing it would be 300 rows.
  assert.ok(packed.length <= Math.ceil(lowerBound * 1.1), `${packed.length} rows, lower bound ${lowerBound}`);
  // Deterministic.
  assert.deepEqual(
    packSequences(examples, maxSeqLen).map((p) => p.lines),
    packed.map((p) => p.lines),
  );
});

test('an example longer than max_seq_len is rejected by line', () => {
  assert.throws(() => packSequences([example(4, 1), example(12, 2)], 10), {
    message: 'line 2: example is 12 tokens, longer than max_seq_len 10',
  });
});
