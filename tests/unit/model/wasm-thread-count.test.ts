import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GPT2_SMALL } from '../../../src/model/gpt-config.js';
import { autoWasmThreads } from '../../../src/model/wasm-thread-count.js';
import { TINY } from '../../helpers/tiny-model.js';

const MINI = { ...TINY, nEmbd: 192, nLayer: 4, nHead: 6, nPositions: 128, vocabSize: 2048 };

test('auto wasm threads: one for small models, up to 4 (and the cores there are) for GPT-2-small-sized ones', () => {
  assert.equal(autoWasmThreads(MINI, 2), 1, 'gentune-mini (2.2M parameters)');
  assert.equal(autoWasmThreads(GPT2_SMALL, 2), 2);
  assert.equal(autoWasmThreads(GPT2_SMALL, 1), 1);
  assert.equal(autoWasmThreads(GPT2_SMALL, 16), 4);
});
