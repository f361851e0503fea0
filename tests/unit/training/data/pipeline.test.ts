import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LengthBucketedBatcher } from '../../../../src/training/data/batcher.js';
import { readSftJsonl } from '../../../../src/training/data/jsonl-reader.js';
import { packSequences } from '../../../../src/training/data/packing.js';
import { resolveValidation } from '../../../../src/training/data/split.js';
import { tokenizeDataset } from '../../../../src/training/data/tokenize-dataset.js';
import { ByteTokenizer, chunksOf } from './byte-tokenizer.js';

test('JSONL -> tokens -> split -> packing -> batches keeps every loss token', async () => {
  const lines = Array.from({ length: 30 }, (_, i) =>
    i % 3 === 0
      ? JSON.stringify({ prompt: `Q${i}: `, completion: `answer ${i}` })
      : i % 3 === 1
        ? JSON.stringify({ messages: [{ role: 'user', content: `hi ${i}` }, { role: 'assistant', content: `yo ${i}` }] })
        : JSON.stringify({ text: `story number ${i}` }),
  );
  const tokenizer = new ByteTokenizer();
  const { examples, stats } = await tokenizeDataset(readSftJsonl(chunksOf(lines.join('\n'))), tokenizer, {
    maxSeqLen: 64,
  });
  assert.equal(stats.examples, 30);
  const { train, validation } = resolveValidation(examples, { validationRatio: 0.2, seed: 3 });
  assert.deepEqual([train.length, validation.length], [24, 6]);
  const packed = packSequences(train, 64);
  assert.ok(packed.length < train.length);
  const batcher = new LengthBucketedBatcher(packed, { batchSize: 2, seed: 3, padId: tokenizer.eosId });
  let lossTokens = 0;
  for (const batch of batcher.epochBatches()) lossTokens += batch.tokenCount;
  const expected = train.reduce((n, e) => n + e.lossMask.reduce((a, b) => a + b, 0), 0);
  assert.equal(lossTokens, expected);
});
