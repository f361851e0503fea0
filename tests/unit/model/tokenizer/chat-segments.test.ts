import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderChat, segmentsToText } from '../../../../src/model/tokenizer/chat-segments.js';
import { encodeSegments } from '../../../../src/training/data/tokenize-example.js';
import type { ChatMessage } from '../../../../src/training/data/sft-example.js';
import { ByteTokenizer } from '../../training/data/byte-tokenizer.js';

const conversation: ChatMessage[] = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Hi' },
  { role: 'assistant', content: 'Hello' },
  { role: 'user', content: 'Bye' },
  { role: 'assistant', content: 'Ciao' },
];

test('renders the documented template', () => {
  assert.equal(
    segmentsToText(renderChat(conversation), '<EOS>'),
    '<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\nHello<EOS><|user|>\nBye\n<|assistant|>\nCiao<EOS>',
  );
});

test('assistant turns and their EOS are loss segments, everything else is prompt', () => {
  assert.deepEqual(renderChat(conversation), [
    { kind: 'text', text: '<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\n', loss: false },
    { kind: 'text', text: 'Hello', loss: true },
    { kind: 'eos', loss: true },
    { kind: 'text', text: '<|user|>\nBye\n<|assistant|>\n', loss: false },
    { kind: 'text', text: 'Ciao', loss: true },
    { kind: 'eos', loss: true },
  ]);
});

test('the generation prompt tokenizes exactly like the training prefix', () => {
  const tokenizer = new ByteTokenizer();
  const training = encodeSegments(renderChat(conversation), tokenizer);
  const prompt = renderChat(conversation.slice(0, 4), { addGenerationPrompt: true });
  assert.equal(segmentsToText(prompt, '<EOS>'), '<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\nHello<EOS><|user|>\nBye\n<|assistant|>\n');
  const inference = encodeSegments(prompt, tokenizer);
  assert.deepEqual(
    [...training.ids.subarray(0, inference.ids.length)],
    [...inference.ids],
  );
  // What follows the prompt in training is exactly the final completion.
  assert.equal(training.completionStart, inference.ids.length);
  assert.equal(tokenizer.decode([...training.ids.subarray(training.completionStart)]), 'Ciao');
});

test('a conversation without a system message starts with the user header', () => {
  const segments = renderChat([
    { role: 'user', content: '' },
    { role: 'assistant', content: 'x' },
  ]);
  assert.equal(segmentsToText(segments), '<|user|>\n\n<|assistant|>\nx<|endoftext|>');
});
