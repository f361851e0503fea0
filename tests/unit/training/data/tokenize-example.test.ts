import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgument } from '../../../../src/common/errors.js';
import { tokenizeExample, type TokenizeOptions } from '../../../../src/training/data/tokenize-example.js';
import { tokenizeDataset } from '../../../../src/training/data/tokenize-dataset.js';
import type { SftExample } from '../../../../src/training/data/sft-example.js';
import { ByteTokenizer, EOS } from './byte-tokenizer.js';

const tokenizer = new ByteTokenizer();
const bytes = (s: string) => [...Buffer.from(s)];

function tok(example: SftExample, options: TokenizeOptions, line = 1) {
  const t = tokenizeExample({ line, example }, tokenizer, options);
  return { ids: [...t.ids], mask: [...t.lossMask], truncated: t.truncatedTokens };
}

function throwsExactly(fn: () => unknown, message: string) {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof InvalidArgument);
    assert.equal(err.message, message);
    return true;
  });
}

const pc: SftExample = { kind: 'prompt_completion', prompt: 'ab', completion: 'cd' };

test('prompt/completion: prompt ++ completion ++ EOS, loss on completion and EOS by default', () => {
  assert.deepEqual(tok(pc, { maxSeqLen: 16 }), {
    ids: [...bytes('abcd'), EOS],
    // lossMask[i] marks ids[i] as a target: 'c', 'd' and EOS.
    mask: [0, 0, 1, 1, 1],
    truncated: 0,
  });
});

test('completionOnly false trains on every token that has a predecessor', () => {
  assert.deepEqual(tok(pc, { maxSeqLen: 16, completionOnly: false }).mask, [0, 1, 1, 1, 1]);
});

test('text: loss on everything and EOS, whatever completionOnly says', () => {
  const text: SftExample = { kind: 'text', text: 'xyz' };
  for (const completionOnly of [true, false]) {
    assert.deepEqual(tok(text, { maxSeqLen: 16, completionOnly }), {
      ids: [...bytes('xyz'), EOS],
      mask: [0, 1, 1, 1],
      truncated: 0,
    });
  }
});

test('chat: loss on each assistant turn and its EOS only; all tokens when switched', () => {
  const chat: SftExample = {
    kind: 'chat',
    messages: [
      { role: 'user', content: 'q' },
      { role: 'assistant', content: 'A' },
      { role: 'user', content: 'r' },
      { role: 'assistant', content: 'B' },
    ],
  };
  const { ids, mask } = tok(chat, { maxSeqLen: 100 });
  const lossText = ids
    .map((id, i) => (mask[i] ? (id === EOS ? '<EOS>' : String.fromCharCode(id)) : ''))
    .join('');
  assert.equal(lossText, 'A<EOS>B<EOS>');
  assert.ok(tok(chat, { maxSeqLen: 100, completionOnly: false }).mask.slice(1).every((m) => m === 1));
});

test('truncation "error" (the default) names the line and both lengths', () => {
  const long: SftExample = { kind: 'prompt_completion', prompt: 'p'.repeat(800), completion: 'c'.repeat(11) };
  throwsExactly(
    () => tok(long, { maxSeqLen: 512 }, 7),
    'line 7: example is 812 tokens, longer than max_seq_len 512',
  );
  // Exactly max_seq_len fits.
  assert.equal(tok(long, { maxSeqLen: 812 }).ids.length, 812);
});

test('truncate_prompt_left drops prompt tokens from the left and keeps the completion', () => {
  const example: SftExample = { kind: 'prompt_completion', prompt: '0123456789', completion: 'abc' };
  const t = tok(example, { maxSeqLen: 8, truncation: 'truncate_prompt_left' });
  assert.deepEqual(t.ids, [...bytes('6789abc'), EOS]);
  assert.deepEqual(t.mask, [0, 0, 0, 0, 1, 1, 1, 1]);
  assert.equal(t.truncated, 6);

  // With completionOnly false, the kept prompt is trained on (except the new first token).
  const all = tok(example, { maxSeqLen: 8, truncation: 'truncate_prompt_left', completionOnly: false });
  assert.deepEqual(all.mask, [0, 1, 1, 1, 1, 1, 1, 1]);

  // The completion plus EOS is 4 tokens: it needs one prompt token before it.
  assert.deepEqual(tok(example, { maxSeqLen: 5, truncation: 'truncate_prompt_left' }).ids, [...bytes('9abc'), EOS]);
  throwsExactly(
    () => tok(example, { maxSeqLen: 4, truncation: 'truncate_prompt_left' }, 3),
    'line 3: completion is 4 tokens (EOS included); with at least one prompt token it does not fit in max_seq_len 4',
  );
});

test('truncate_prompt_left on chat keeps the final assistant turn and drops the oldest turns', () => {
  const chat: SftExample = {
    kind: 'chat',
    messages: [
      { role: 'system', content: 'S'.repeat(50) },
      { role: 'user', content: 'U' },
      { role: 'assistant', content: 'final' },
    ],
  };
  const t = tok(chat, { maxSeqLen: 22, truncation: 'truncate_prompt_left' });
  assert.equal(t.ids.length, 22);
  assert.equal(tokenizer.decode(t.ids), 'U\n<|assistant|>\nfinal');
  assert.equal(t.ids[t.ids.length - 1], EOS);
  assert.equal(t.mask.reduce((a, b) => a + b, 0), 6); // 'final' + EOS
});

test('truncate_prompt_left cannot shorten a text example', () => {
  throwsExactly(
    () => tok({ kind: 'text', text: 'x'.repeat(20) }, { maxSeqLen: 10, truncation: 'truncate_prompt_left' }, 2),
    'line 2: example is 21 tokens, longer than max_seq_len 10, and a `text` example has no prompt to truncate',
  );
});

test('truncate_right keeps the first max_seq_len tokens, and needs a loss token left', () => {
  const text = tok({ kind: 'text', text: 'abcdefgh' }, { maxSeqLen: 4, truncation: 'truncate_right' });
  assert.deepEqual(text, { ids: bytes('abcd'), mask: [0, 1, 1, 1], truncated: 5 });

  const example: SftExample = { kind: 'prompt_completion', prompt: 'abc', completion: 'defgh' };
  assert.deepEqual(tok(example, { maxSeqLen: 5, truncation: 'truncate_right' }), {
    ids: bytes('abcde'),
    mask: [0, 0, 0, 1, 1],
    truncated: 4,
  });
  throwsExactly(
    () => tok(example, { maxSeqLen: 3, truncation: 'truncate_right' }, 9),
    'line 9: example is 9 tokens, longer than max_seq_len 3, and truncating it on the right leaves no loss tokens',
  );
});

test('options are validated', () => {
  throwsExactly(() => tok(pc, { maxSeqLen: 1 }), '`max_seq_len` must be an integer >= 2, got 1');
  throwsExactly(
    () => tok(pc, { maxSeqLen: 8, truncation: 'middle' as never }),
    '`truncation` must be one of error, truncate_prompt_left, truncate_right, got "middle"',
  );
});

test('tokenizeDataset tokenizes every record and totals tokens', async () => {
  const { examples, stats } = await tokenizeDataset(
    [
      { line: 1, example: pc },
      { line: 3, example: { kind: 'text', text: 'abcdefgh' } },
    ],
    tokenizer,
    { maxSeqLen: 6, truncation: 'truncate_right' },
  );
  assert.deepEqual(
    examples.map((e) => e.line),
    [1, 3],
  );
  assert.deepEqual(stats, {
    examples: 2,
    tokens: 11,
    lossTokens: 3 + 5,
    truncatedExamples: 1,
    truncatedTokens: 3,
    maxTokens: 6,
  });
});
