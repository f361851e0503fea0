import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgument } from '../../../../src/common/errors.js';
import { readSftJsonl, readSftJsonlFile } from '../../../../src/training/data/jsonl-reader.js';
import { chunksOf, collect } from './byte-tokenizer.js';

async function read(text: string, options = {}) {
  return collect(readSftJsonl(chunksOf(text), options));
}

/** Asserts that reading `text` fails with exactly `message` as an InvalidArgument. */
async function rejects(text: string, message: string, options = {}) {
  await assert.rejects(read(text, options), (err: unknown) => {
    assert.ok(err instanceof InvalidArgument, `expected InvalidArgument, got ${String(err)}`);
    assert.equal(err.code, 'INVALID_ARGUMENT');
    assert.equal(err.message, message);
    return true;
  });
}

test('reads the three shapes with line numbers, skipping blank lines', async () => {
  const text = [
    '{"prompt": "2+2=", "completion": " 4"}',
    '',
    '   ',
    '{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}',
    '{"text": "Once upon a time", "id": 7}',
    '',
  ].join('\n');
  assert.deepEqual(await read(text), [
    { line: 1, example: { kind: 'prompt_completion', prompt: '2+2=', completion: ' 4' } },
    {
      line: 4,
      example: {
        kind: 'chat',
        messages: [
          { role: 'system', content: 'Be brief.' },
          { role: 'user', content: 'Hi' },
          { role: 'assistant', content: 'Hello' },
        ],
      },
    },
    { line: 5, example: { kind: 'text', text: 'Once upon a time' } },
  ]);
});

test('lines and UTF-8 characters may be split across chunks; CRLF, BOM, no final newline', async () => {
  const bytes = Buffer.from('\uFEFF{"text": "h\u00e9llo \u{1F600}"}\r\n\r\n{"text": "b"}', 'utf8');
  // Every byte in its own chunk: splits every line and every multi-byte character.
  const chunks = [...bytes].map((b) => Uint8Array.of(b));
  const records = await collect(readSftJsonl(chunksOf(...chunks)));
  assert.deepEqual(records, [
    { line: 1, example: { kind: 'text', text: 'h\u00e9llo \u{1F600}' } },
    { line: 3, example: { kind: 'text', text: 'b' } },
  ]);
  // String chunks too.
  const fromStrings = await collect(readSftJsonl(chunksOf('{"te', 'xt": "a"}\n{"text"', ': "b"}\n')));
  assert.deepEqual(
    fromStrings.map((r) => r.line),
    [1, 2],
  );
});

test('reads a file by path', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gentune-jsonl-'));
  try {
    const path = join(dir, 'train.jsonl');
    writeFileSync(path, '{"prompt": "a", "completion": "b"}\n{"text": "c"}\n');
    const records = await collect(readSftJsonlFile(path));
    assert.deepEqual(
      records.map((r) => r.example.kind),
      ['prompt_completion', 'text'],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('yields examples before the stream ends, and stops at the first bad line', async () => {
  const seen: number[] = [];
  await assert.rejects(async () => {
    for await (const r of readSftJsonl(chunksOf('{"text": "a"}\n{"text": "b"}\n{oops\n{"text": "d"}\n'))) {
      seen.push(r.line);
    }
  }, /line 3: invalid JSON/);
  assert.deepEqual(seen, [1, 2]);
});

test('errors name the line and the field', async () => {
  const cases: [string, string][] = [
    ['{"text": "ok"}\n{"prompt": "a", "completion": "b"', 'line 2: invalid JSON'],
    ['[1, 2]', 'line 1: expected a JSON object, got an array'],
    ['"just a string"', 'line 1: expected a JSON object, got "just a string"'],
    ['null', 'line 1: expected a JSON object, got null'],
    ['{"prompt": "a"}', 'line 1: missing `completion`'],
    ['{"completion": "a"}', 'line 1: missing `prompt`'],
    ['{"prompt": "a", "completion": ""}', 'line 1: `completion` must be a non-empty string, got ""'],
    ['{"prompt": "a", "completion": 42}', 'line 1: `completion` must be a non-empty string, got 42'],
    ['{"prompt": null, "completion": "b"}', 'line 1: `prompt` must be a string, got null'],
    ['{"text": ""}', 'line 1: `text` must be a non-empty string, got ""'],
    ['{"text": ["a"]}', 'line 1: `text` must be a non-empty string, got an array'],
    ['{"messages": []}', 'line 1: `messages` must be a non-empty array, got an empty array'],
    ['{"messages": "hi"}', 'line 1: `messages` must be a non-empty array, got "hi"'],
    [
      '{"messages": ["hi"]}',
      'line 1: `messages[0]` must be an object with `role` and `content`, got "hi"',
    ],
    ['{"messages": [{"content": "hi"}]}', 'line 1: missing `messages[0].role`'],
    [
      '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "bot", "content": "c"}]}',
      'line 1: `messages[2].role` must be one of system, user, assistant, got "bot"',
    ],
    [
      '{"messages": [{"role": 3, "content": "a"}]}',
      'line 1: `messages[0].role` must be one of system, user, assistant, got 3',
    ],
    ['{"messages": [{"role": "user"}]}', 'line 1: missing `messages[0].content`'],
    [
      '{"messages": [{"role": "user", "content": {"a": 1}}, {"role": "assistant", "content": "b"}]}',
      'line 1: `messages[0].content` must be a string, got an object',
    ],
    [
      '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": ""}]}',
      'line 1: `messages[1].content` must be a non-empty string, got ""',
    ],
    [
      '{"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}, {"role": "assistant", "content": "c"}]}',
      'line 1: `messages[1].role` "system" is only allowed in the first message',
    ],
    [
      '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]}',
      'line 1: the last message must be from the assistant, got "user"',
    ],
    [
      '{"input": "a", "output": "b"}',
      'line 1: example matches no shape: expected {"prompt", "completion"}, {"messages"} or {"text"}, got fields `input`, `output`',
    ],
    [
      '{}',
      'line 1: example matches no shape: expected {"prompt", "completion"}, {"messages"} or {"text"}, got an empty object',
    ],
    [
      '{"prompt": "a", "completion": "b", "text": "c"}',
      'line 1: example mixes fields of different shapes (`prompt`, `text`); use exactly one of {"prompt", "completion"}, {"messages"} or {"text"}',
    ],
  ];
  for (const [text, message] of cases) await rejects(text, message);
});

test('line numbers count blank lines', async () => {
  await rejects('{"text": "a"}\n\n\n{"prompt": "x"}\n', 'line 4: missing `completion`');
});

test('invalid UTF-8 names the line', async () => {
  await assert.rejects(
    collect(readSftJsonl(chunksOf('{"text": "a"}\n', Uint8Array.of(0x7b, 0xff, 0x7d, 0x0a)))),
    { message: 'line 2: invalid UTF-8' },
  );
});

test('max_line_bytes rejects a long line before it ends; max_examples counts non-blank lines', async () => {
  const line = `{"text": "${'x'.repeat(100)}"}`; // 112 bytes
  assert.equal((await read(line, { maxLineBytes: 112 })).length, 1);
  await rejects(`{"text": "a"}\n${line}\n`, 'line 2: longer than max_line_bytes 111 bytes', { maxLineBytes: 111 });

  // A line that never ends is rejected once it passes the limit, not buffered forever.
  async function* endless() {
    yield '{"text": "';
    for (;;) yield 'x'.repeat(1000);
  }
  await assert.rejects(collect(readSftJsonl(endless(), { maxLineBytes: 10_000 })), {
    message: 'line 1: longer than max_line_bytes 10000 bytes',
  });

  const three = '{"text": "a"}\n\n{"text": "b"}\n{"text": "c"}\n';
  assert.equal((await read(three, { maxExamples: 3 })).length, 3);
  await rejects(three, 'line 4: more than max_examples 2 examples', { maxExamples: 2 });
  await rejects('', '`max_examples` must be a positive integer, got 0', { maxExamples: 0 });
});
