import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../../../src/common/rng.js';
import {
  LengthBucketedBatcher,
  evaluationBatches,
  type BatcherOptions,
} from '../../../../src/training/data/batcher.js';
import type { Batch } from '../../../../src/training/data/collate.js';
import { packSequences } from '../../../../src/training/data/packing.js';
import type { TokenSequence } from '../../../../src/training/data/token-sequence.js';
import { tokenizeExample } from '../../../../src/training/data/tokenize-example.js';
import { ByteTokenizer, EOS } from './byte-tokenizer.js';

const tokenizer = new ByteTokenizer();

/** `count` text examples of random lengths in [2, maxLength] tokens; example i is made of byte i % 256. */
function dataset(count: number, maxLength: number, seed = 1) {
  const rng = new Rng(seed);
  return Array.from({ length: count }, (_, i) =>
    tokenizeExample(
      { line: i + 1, example: { kind: 'text', text: String.fromCharCode(i % 128).repeat(1 + rng.int(maxLength - 1)) } },
      tokenizer,
      { maxSeqLen: maxLength },
    ),
  );
}

const options: BatcherOptions = { batchSize: 8, seed: 7, padId: EOS };

/** A comparable digest of a batch: its rows' example indices and its shape. */
const digest = (b: Batch) => `${b.seqLen}:${b.exampleIndices.join(',')}`;

test('collates rows right-padded with EOS: shifted targets, loss weights, attention and segment ids', () => {
  const a: TokenSequence = { ids: Int32Array.of(1, 2, 3, EOS), lossMask: Uint8Array.of(0, 0, 1, 1) };
  const b: TokenSequence = { ids: Int32Array.of(4, EOS), lossMask: Uint8Array.of(0, 1) };
  const [batch] = [...evaluationBatches([a, b], 2, EOS)];
  const P = EOS;
  assert.equal(batch.size, 2);
  assert.equal(batch.seqLen, 4);
  assert.deepEqual(batch.exampleIndices, [1, 0]); // shortest first
  assert.deepEqual([...batch.inputIds], [4, EOS, P, P, 1, 2, 3, EOS]);
  assert.deepEqual([...batch.targets], [EOS, P, P, P, 2, 3, EOS, P]);
  assert.deepEqual([...batch.lossWeights], [1, 0, 0, 0, 0, 1, 1, 0]);
  assert.deepEqual([...batch.attentionMask], [1, 1, 0, 0, 1, 1, 1, 1]);
  assert.deepEqual([...batch.segmentIds], [1, 1, 0, 0, 1, 1, 1, 1]);
  assert.equal(batch.tokenCount, 3);
});

test('every example appears exactly once per epoch', () => {
  const sequences = dataset(203, 100);
  const batcher = new LengthBucketedBatcher(sequences, options);
  assert.equal(batcher.batchesPerEpoch, 26); // ceil(203 / 8)
  for (let epoch = 0; epoch < 3; epoch++) {
    const batches = [...batcher.epochBatches()];
    assert.equal(batches.length, 26);
    const seen = batches.flatMap((b) => b.exampleIndices).sort((x, y) => x - y);
    assert.deepEqual(
      seen,
      sequences.map((_, i) => i),
    );
    assert.equal(batches.filter((b) => b.size < 8).length, 1);
    for (const b of batches) {
      assert.equal(b.seqLen, Math.max(...b.exampleIndices.map((i) => sequences[i].ids.length)));
      // Rows hold the sequences they claim.
      b.exampleIndices.forEach((index, row) => {
        const ids = sequences[index].ids;
        assert.deepEqual([...b.inputIds.subarray(row * b.seqLen, row * b.seqLen + ids.length)], [...ids]);
      });
    }
    assert.deepEqual(batcher.getState().epoch, epoch + 1);
  }
});

test('bucketing puts sequences of similar length together', () => {
  const sequences = dataset(2000, 200);
  const padding = (batcher: LengthBucketedBatcher) => {
    let pad = 0;
    let cells = 0;
    for (const b of batcher.epochBatches()) {
      cells += b.size * b.seqLen;
      pad += b.attentionMask.reduce((n, m) => n + (1 - m), 0);
    }
    return pad / cells;
  };
  const bucketed = padding(new LengthBucketedBatcher(sequences, options));
  const random = padding(new LengthBucketedBatcher(sequences, { ...options, bucketWindowBatches: 1 }));
  // Uniform lengths: random batches of 8 are ~40% padding; sorted windows of 400 are a few percent.
  assert.ok(random > 0.3, `random batches: ${random}`);
  assert.ok(bucketed < 0.05, `bucketed batches: ${bucketed}`);
  // Batches are still shuffled: lengths do not rise steadily through the epoch.
  const lengths = [...new LengthBucketedBatcher(sequences, options).epochBatches()].map((b) => b.seqLen);
  const rises = lengths.slice(1).filter((n, i) => n > lengths[i]).length;
  assert.ok(rises > lengths.length * 0.3 && rises < lengths.length * 0.7, `${rises} rises`);
});

test('deterministic under a seed; epochs and seeds differ', () => {
  const sequences = dataset(100, 50);
  const run = (seed: number) => {
    const batcher = new LengthBucketedBatcher(sequences, { ...options, seed });
    return Array.from({ length: 2 * batcher.batchesPerEpoch }, () => digest(batcher.next()));
  };
  const a = run(7);
  assert.deepEqual(run(7), a);
  assert.notDeepEqual(run(8), a);
  assert.notDeepEqual(a.slice(0, 13), a.slice(13)); // 13 batches per epoch
});

test('a restored batcher yields exactly the batches of an uninterrupted one', () => {
  const sequences = dataset(150, 80);
  const uninterrupted = new LengthBucketedBatcher(sequences, options);
  const perEpoch = uninterrupted.batchesPerEpoch; // 19
  const expected = Array.from({ length: 3 * perEpoch }, () => uninterrupted.next());
  // Stop mid-epoch, at an epoch boundary, one before it, and at the start.
  for (const stopAfter of [0, 5, perEpoch - 1, perEpoch, perEpoch + 7, 2 * perEpoch]) {
    const first = new LengthBucketedBatcher(sequences, options);
    for (let k = 0; k < stopAfter; k++) first.next();
    // Through JSON, as a checkpoint stores it.
    const saved = JSON.parse(JSON.stringify(first.getState()));
    const resumed = new LengthBucketedBatcher(sequences, { ...options, seed: 999 });
    resumed.restore(saved);
    for (let k = stopAfter; k < expected.length; k++) {
      assert.deepEqual(resumed.next(), expected[k], `stopped after ${stopAfter}, batch ${k}`);
    }
  }
});

test('the state reads as epoch and batch index', () => {
  const batcher = new LengthBucketedBatcher(dataset(20, 10), options); // 3 batches per epoch
  batcher.next();
  assert.deepEqual(
    { ...batcher.getState(), rngState: 0 },
    { epoch: 0, batchIndex: 1, rngState: 0 },
  );
  batcher.next();
  batcher.next();
  assert.deepEqual(
    { ...batcher.getState(), rngState: 0 },
    { epoch: 1, batchIndex: 0, rngState: 0 },
  );
});

test('bad options and states are rejected', () => {
  const sequences = dataset(20, 10);
  assert.throws(() => new LengthBucketedBatcher([], options), { message: 'the dataset has no examples to batch' });
  assert.throws(() => new LengthBucketedBatcher(sequences, { ...options, batchSize: 0 }), {
    message: '`batch_size` must be a positive integer, got 0',
  });
  const batcher = new LengthBucketedBatcher(sequences, options);
  assert.throws(() => batcher.restore({ epoch: 0, batchIndex: 3, rngState: 1 }), {
    message: '`batcher.batchIndex` must be an integer in [0, 3), got 3',
  });
  assert.throws(() => batcher.restore({ epoch: -1, batchIndex: 0, rngState: 1 }), {
    message: '`batcher.epoch` must be a non-negative integer, got -1',
  });
  assert.throws(() => batcher.restore({ epoch: 0, batchIndex: 0, rngState: 2 ** 32 }), {
    message: '`batcher.rngState` must be a uint32, got 4294967296',
  });
});

test('packed sequences keep their segment ids through batching', () => {
  const packed = packSequences(dataset(40, 12), 32);
  const batcher = new LengthBucketedBatcher(packed, { ...options, batchSize: 4 });
  for (const batch of batcher.epochBatches()) {
    batch.exampleIndices.forEach((index, row) => {
      const p = packed[index];
      const start = row * batch.seqLen;
      assert.deepEqual([...batch.segmentIds.subarray(start, start + p.ids.length)], [...p.segmentIds]);
      assert.ok(batch.segmentIds.subarray(start + p.ids.length, start + batch.seqLen).every((s) => s === 0));
    });
  }
});

test('evaluation batches cover every sequence once, shortest first', () => {
  const sequences = dataset(37, 30);
  const batches = [...evaluationBatches(sequences, 8, EOS)];
  assert.equal(batches.length, 5);
  const order = batches.flatMap((b) => b.exampleIndices);
  assert.deepEqual(
    [...order].sort((x, y) => x - y),
    sequences.map((_, i) => i),
  );
  const lengths = order.map((i) => sequences[i].ids.length);
  assert.deepEqual(lengths, [...lengths].sort((x, y) => x - y));
});
