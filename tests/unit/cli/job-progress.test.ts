import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeEvent } from '../../../src/cli/job-progress.js';
import { FineTuneEvent } from '../../../src/gen/gentune/v1/fine_tune.js';

test('a started event says whether the job resumed, and from which step', () => {
  const started = (resumedFromStep?: number) =>
    describeEvent(FineTuneEvent.fromPartial({ jobId: 'ft-1', event: { $case: 'started', value: { totalSteps: 10, numTrainExamples: 8, numValidationExamples: 2, trainableParameters: 64, resumedFromStep } } }));
  assert.equal(started(), 'started: 10 steps, 8 train / 2 validation examples, 64 trainable parameters');
  assert.equal(started(4), 'resumed from step 4: 10 steps, 8 train / 2 validation examples, 64 trainable parameters');
});
