/**
 * --max-dataset-examples is one rule whatever its value (issue 18): an upload
 * with more examples is RESOURCE_EXHAUSTED naming the limit by key and flag,
 * at the default (where the JSONL reader's own cap used to answer first, with
 * INVALID_ARGUMENT "more than max_examples 1000000") as at a custom value, and
 * a custom value above the default is honoured.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { status as Code } from '@grpc/grpc-js';
import { defaultConfig } from '../../src/engine/config.js';
import { rejectsWith, startHarness, type Harness } from './helpers/harness.js';

const DEFAULT = defaultConfig().limits.maxDatasetExamples;

/** `n` one-line text examples, the smallest lines a dataset can have. */
const lines = (n: number) => Buffer.from('{"text":"a"}\n'.repeat(n));

const named = (value: number) => new RegExp(`at most limits\\.max_dataset_examples \\(--max-dataset-examples\\) ${value} examples`);

describe('--max-dataset-examples at the default and at custom values', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(() => h.close());

  test('the default: one example over it is RESOURCE_EXHAUSTED naming the flag; nothing is stored', async () => {
    assert.equal(DEFAULT, 1_000_000);
    await rejectsWith(h.client.uploadDataset({ name: 'over-default' }, lines(DEFAULT + 1), { timeoutMs: 120_000 }), Code.RESOURCE_EXHAUSTED, named(DEFAULT));
    assert.deepEqual(await h.client.listDatasets(), []);
  });
});

describe('a custom --max-dataset-examples above the default', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ limits: { maxDatasetExamples: DEFAULT + 1 } });
  });
  after(() => h.close());

  test('is honoured: DEFAULT + 1 examples are stored, DEFAULT + 2 are RESOURCE_EXHAUSTED naming it', async () => {
    const stored = await h.client.uploadDataset({ name: 'at-limit' }, lines(DEFAULT + 1), { timeoutMs: 120_000 });
    assert.equal(stored.numExamples, DEFAULT + 1);
    await rejectsWith(h.client.uploadDataset({ name: 'over-limit' }, lines(DEFAULT + 2), { timeoutMs: 120_000 }), Code.RESOURCE_EXHAUSTED, named(DEFAULT + 1));
  });
});
