import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvalidArgument } from '../../../../src/common/errors.js';
import { FALLBACK_CHAT_TEMPLATE, loadChatTemplate, type ChatTemplateMessage } from '../../../../src/model/tokenizer/chat-template.js';
import type { ByteLevelBpe } from '../../../../src/model/tokenizer/byte-level-bpe.js';
import { loadTokenizer, saveTokenizer } from '../../../../src/model/tokenizer/load-tokenizer.js';
import { renderChat, segmentsToText } from '../../../../src/model/tokenizer/chat-segments.js';
import { encodeSegments } from '../../../../src/training/data/tokenize-example.js';
import { requirePeer, skipWithoutPeer } from '../../../helpers/test-peer.js';
import { byteTokenizer } from './fixtures.js';
import { HF_MODELS, bundledTokenizer, modelFolder, tinyTokenizerJson } from './hf-fixtures.js';

const PYTHON = '/usr/bin/python3';
const REFERENCE = fileURLToPath(new URL('../../../reference/chat_template_reference.py', import.meta.url));
const missingJinja =
  existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import jinja2']).status === 0
    ? false
    : `${PYTHON} with Jinja2 not available (apt-get install -y python3-jinja2)`;

const S = { role: 'system', content: 'You are terse.' };
const U = { role: 'user', content: 'Hi!' };
const A = { role: 'assistant', content: 'Hello.' };

/** Conversations rendered by both engines, each with and without the generation prompt. */
const CONVERSATIONS: ChatTemplateMessage[][] = [
  [S, U, A],
  [S, U],
  [U],
  [U, A, { role: 'user', content: 'And then?' }, { role: 'assistant', content: 'Then the end.' }, { role: 'user', content: 'Thanks' }],
  [
    { role: 'system', content: '  spaced system\n\twith tabs  ' },
    { role: 'user', content: 'Unicode 漢字 😀, quotes "\' and {{ braces }} {% raw %}' },
    { role: 'assistant', content: '<think>\nweighing it\n</think>\n\nThe answer: 42.' },
    { role: 'user', content: '\n\nleading newlines' },
  ],
];

/**
 * transformers' `special_tokens_map` from tokenizer_config.json: the roles
 * that are set, as strings (computed here, not by the code under test).
 */
function specialTokensMap(config: Record<string, any>): Record<string, unknown> {
  const map: Record<string, unknown> = {};
  const content = (v: unknown) => (typeof v === 'string' ? v : (v as { content: string }).content);
  for (const role of ['bos_token', 'eos_token', 'unk_token', 'pad_token']) {
    if (config[role] !== undefined && config[role] !== null) map[role] = content(config[role]);
  }
  if (Array.isArray(config['additional_special_tokens']) && config['additional_special_tokens'].length > 0) {
    map['additional_special_tokens'] = config['additional_special_tokens'].map(content);
  }
  return map;
}

interface Case {
  messages: ChatTemplateMessage[];
  add_generation_prompt: boolean;
  variables?: Record<string, unknown>;
}

/** The cases rendered by Python's Jinja2 set up as transformers sets it up (tests/reference/chat_template_reference.py). */
function jinja2Render(template: string, specials: Record<string, unknown>, cases: Case[]): Array<string | { error: string }> {
  requirePeer(missingJinja);
  const r = spawnSync(PYTHON, [REFERENCE], { input: JSON.stringify({ template, specials, cases }), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

function casesOf(conversations: ChatTemplateMessage[][], variables?: Record<string, unknown>): Case[] {
  return conversations.flatMap((messages) => [false, true].map((agp) => ({ messages, add_generation_prompt: agp, variables })));
}

for (const model of ['qwen3', 'llama3'] as const) {
  test(`${model}: the bundled template renders as Python's Jinja2 renders it for transformers`, { skip: skipWithoutPeer(missingJinja) }, async () => {
    const config = JSON.parse(await readFile(join(HF_MODELS[model], 'tokenizer_config.json'), 'utf8'));
    const chat = await loadChatTemplate(HF_MODELS[model], await bundledTokenizer(model));
    const cases = [...casesOf(CONVERSATIONS), ...casesOf([[S, U]], { enable_thinking: false })];
    const want = jinja2Render(config.chat_template, specialTokensMap(config), cases);
    cases.forEach((c, i) => {
      const got = chat.render(c.messages, { addGenerationPrompt: c.add_generation_prompt, variables: c.variables });
      assert.equal(got, want[i], `case ${i}: ${JSON.stringify(c)}`);
    });
  });
}

test('the built-in fallback renders as Python\'s Jinja2 renders it', { skip: skipWithoutPeer(missingJinja) }, async () => {
  const chat = await loadChatTemplate(await modelFolder(undefined), byteTokenizer());
  const cases = casesOf(CONVERSATIONS);
  const want = jinja2Render(FALLBACK_CHAT_TEMPLATE, { eos_token: '<|endoftext|>' }, cases);
  cases.forEach((c, i) => assert.equal(chat.render(c.messages, { addGenerationPrompt: c.add_generation_prompt }), want[i], `case ${i}`));
});

/**
 * Zephyr's template (HuggingFaceH4/zephyr-7b-beta), one statement a line: its
 * output depends on trim_blocks; indented, on lstrip_blocks too. Plus `tojson`.
 */
const ZEPHYR =
  "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n" +
  "{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n" +
  "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n" +
  "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";
const INDENTED = `{% for message in messages %}\n    {% if message.role == 'system' %}\n  [{{ message | tojson }}]\n    {% else %}\n{{ message.role }}: {{ message.content }}\n    {% endif %}\n{% endfor %}`;

test('templates that lean on trim_blocks, lstrip_blocks and tojson render as in Jinja2', { skip: skipWithoutPeer(missingJinja) }, async () => {
  for (const template of [ZEPHYR, INDENTED]) {
    const chat = await loadChatTemplate(await modelFolder(undefined, { 'chat_template.jinja': template }), byteTokenizer());
    const cases = casesOf(CONVERSATIONS);
    const want = jinja2Render(template, { eos_token: '<|endoftext|>' }, cases);
    cases.forEach((c, i) => assert.equal(chat.render(c.messages, { addGenerationPrompt: c.add_generation_prompt }), want[i], `case ${i}`));
  }
});

test('golden renderings: ChatML (Qwen3), Llama 3, the fallback', async () => {
  const qwen = await loadChatTemplate(HF_MODELS.qwen3, await bundledTokenizer('qwen3'));
  // ChatML; Qwen3's template gives the last assistant turn an empty <think> block.
  assert.equal(
    qwen.render([S, U, A]),
    '<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nHello.<|im_end|>\n',
  );
  assert.equal(qwen.render([S, U], { addGenerationPrompt: true }), '<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n');
  assert.equal(
    qwen.render([U], { addGenerationPrompt: true, variables: { enable_thinking: false } }),
    '<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n',
  );
  const llama3 = await loadChatTemplate(HF_MODELS.llama3, await bundledTokenizer('llama3'));
  // Meta's Llama 3 format. This (early) template writes the assistant header whatever add_generation_prompt says.
  const header = (role: string) => `<|start_header_id|>${role}<|end_header_id|>\n\n`;
  const turns = `<|begin_of_text|>${header('system')}You are terse.<|eot_id|>${header('user')}Hi!<|eot_id|>`;
  assert.equal(llama3.render([S, U], { addGenerationPrompt: true }), `${turns}${header('assistant')}`);
  assert.equal(llama3.render([S, U, A]), `${turns}${header('assistant')}Hello.<|eot_id|>${header('assistant')}`);
  const fallback = await loadChatTemplate(HF_MODELS.llama2, await bundledTokenizer('llama2'));
  assert.equal(fallback.file, 'the built-in fallback chat template');
  assert.equal(fallback.render([S, U, A]), '<|system|>\nYou are terse.\n<|user|>\nHi!\n<|assistant|>\nHello.</s>');
});

test('the fallback is gentune\'s fine-tuning format: the same text as renderChat', async () => {
  // A GPT-2-style folder: vocab.json + merges.txt, no tokenizer_config.json.
  const dir = await modelFolder(undefined);
  await saveTokenizer(dir, byteTokenizer());
  const gpt2 = await loadTokenizer(dir);
  const chat = await loadChatTemplate(dir, gpt2 as ByteLevelBpe);
  for (const messages of CONVERSATIONS) {
    const roles = messages.map((m) => ({ role: m.role as 'system' | 'user' | 'assistant', content: m.content }));
    for (const addGenerationPrompt of [false, true]) {
      const want = segmentsToText(renderChat(roles, { addGenerationPrompt }));
      assert.equal(chat.render(messages, { addGenerationPrompt }), want);
    }
  }
  // Encoded with its specials parsed, the assistant turn ends in the EOS id itself.
  const ids = gpt2.encode(chat.render([U, A]), { parseSpecialTokens: true });
  assert.equal(ids.at(-1), gpt2.eosId);
  assert.deepEqual(chat.endOfTurnIds, [256]);
});

test('end-of-turn ids: the turn marker the template writes, then every EOS id', async () => {
  const qwen = await bundledTokenizer('qwen3');
  const imEnd = qwen.tokenToId('<|im_end|>')!;
  assert.deepEqual((await loadChatTemplate(HF_MODELS.qwen3, qwen)).endOfTurnIds, [imEnd]);
  const llama3 = await bundledTokenizer('llama3');
  const eot = llama3.tokenToId('<|eot_id|>')!;
  assert.deepEqual((await loadChatTemplate(HF_MODELS.llama3, llama3)).endOfTurnIds, [eot, llama3.tokenToId('<|end_of_text|>')]);
  // With generation_config.json's list (as Qwen3 ships one), and the fallback template: EOS ids only.
  const dir = await modelFolder(undefined, {
    'tokenizer.json': tinyTokenizerJson(),
    'tokenizer_config.json': { eos_token: '</s>' },
    'generation_config.json': { eos_token_id: [2, 0] },
  });
  assert.deepEqual((await loadChatTemplate(dir, (await loadTokenizer(dir)) as typeof qwen)).endOfTurnIds, [2, 0]);

  // The rendered prompt encodes its markers as the special tokens, and decodes back to the messages' text.
  const text = (await loadChatTemplate(HF_MODELS.qwen3, qwen)).render([U, A]);
  const ids = qwen.encode(text, { parseSpecialTokens: true });
  assert.deepEqual(ids.slice(0, 1), [qwen.tokenToId('<|im_start|>')]);
  assert.deepEqual(ids.slice(-2), [imEnd, ...qwen.encode('\n')]);
  assert.equal(qwen.decode(ids), 'user\nHi!\nassistant\n<think>\n\n</think>\n\nHello.\n');
});

function rejectsNaming(file: string, what: RegExp) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof InvalidArgument, `expected InvalidArgument, got ${String(e)}`);
    assert.ok(e.message.includes(file), `${JSON.stringify(e.message)} names ${file}`);
    assert.match(e.message, what);
    return true;
  };
}

test('template sources: chat_template.jinja first, a named list\'s default; bad ones name the file', async () => {
  const tok = byteTokenizer();
  const config = (chat_template: unknown) => ({ 'tokenizer_config.json': { eos_token: '<|endoftext|>', chat_template } });
  const fromJinja = await loadChatTemplate(await modelFolder(undefined, { ...config('config'), 'chat_template.jinja': 'jinja {{ eos_token }}' }), tok);
  assert.equal(fromJinja.render([U]), 'jinja <|endoftext|>');
  const named = await loadChatTemplate(await modelFolder(undefined, config([{ name: 'tool_use', template: 'tools' }, { name: 'default', template: 'plain' }])), tok);
  assert.equal(named.render([U]), 'plain');

  const bad: Array<[Record<string, string | object>, string, RegExp]> = [
    [config('{% for m in messages %}'), 'tokenizer_config.json', /`chat_template` does not parse/],
    [config('{{ messages | nonesuch }}'), 'tokenizer_config.json', /`chat_template` fails on a user\/assistant conversation/],
    [config(42), 'tokenizer_config.json', /`chat_template` must be a string or a list/],
    [config([{ name: 'tool_use', template: 'x' }]), 'tokenizer_config.json', /no "default" template \(it has \["tool_use"\]\)/],
    [config([{ name: 'default' }]), 'tokenizer_config.json', /`chat_template\[0\]` must be/],
    [{ 'tokenizer_config.json': '{"chat_template": "x"' }, 'tokenizer_config.json', /malformed JSON/],
    [{ 'chat_template.jinja': '{% if %}' }, 'chat_template.jinja', /does not parse/],
  ];
  for (const [files, file, what] of bad) await assert.rejects(loadChatTemplate(await modelFolder(undefined, files), tok), rejectsNaming(file, what));

  // raise_exception: the template's own message, naming the file.
  const strict = await loadChatTemplate(
    await modelFolder(undefined, config("{% if messages[0]['role'] != 'user' %}{{ raise_exception('Conversations must start with a user turn') }}{% endif %}ok")),
    tok,
  );
  assert.equal(strict.render([U]), 'ok');
  assert.throws(() => strict.render([S, U]), rejectsNaming('tokenizer_config.json', /fails on these messages: Conversations must start with a user turn/));
});

test('segments of a model template: the whole rendering, each assistant turn as the template writes it is the loss, and encoding them gives the ids of the whole text', async () => {
  const tok = await bundledTokenizer('qwen3');
  const chat = await loadChatTemplate(HF_MODELS.qwen3, tok);
  const conversation = CONVERSATIONS[3] as Parameters<typeof chat.segments>[0];
  const segments = chat.segments(conversation);
  const text = (s: (typeof segments)[number]) => (s.kind === 'text' ? s.text : '');
  assert.equal(segments.map(text).join(''), chat.render(conversation));
  // Each assistant content through its end-of-turn token is the loss; the prompt before it ends with the generation prompt.
  assert.deepEqual(segments.filter((s) => s.loss).map(text), ['Hello.<|im_end|>', 'Then the end.<|im_end|>']);
  assert.equal(text(segments[0]), chat.render(conversation.slice(0, 1), { addGenerationPrompt: true }));
  assert.ok(segments.filter((s) => !s.loss).every((s) => s.kind === 'text' && s.special), 'template text is parsed for special tokens');
  // Encoded piece by piece (special tokens parsed) = the whole text encoded at once; the mask covers the assistant turns.
  const encoded = encodeSegments(segments, tok);
  assert.deepEqual(Array.from(encoded.ids), tok.encode(chat.render(conversation), { parseSpecialTokens: true }));
  const imEnd = tok.tokenToId('<|im_end|>')!;
  const trained = Array.from(encoded.ids).filter((_, i) => encoded.lossMask[i] === 1);
  assert.equal(trained.filter((id) => id === imEnd).length, 2, 'both assistant turns end in a trained <|im_end|>');
  assert.equal(Array.from(encoded.lossMask).filter((m) => m === 1).length, trained.length);
  assert.deepEqual(tok.decode(trained.filter((id) => id !== imEnd)).replace(/\n/g, ''), 'Hello.Then the end.');
});

test('segments: Qwen3\'s past turns lose their <think> block and still train on what is kept; a template that drops a content is refused, naming the file', async () => {
  const tok = await bundledTokenizer('qwen3');
  const qwen = await loadChatTemplate(HF_MODELS.qwen3, tok);
  const thinking = [U, { role: 'assistant', content: '<think>\nhm\n</think>\n\nFirst.' }, U, A] as Parameters<typeof qwen.segments>[0];
  assert.deepEqual(qwen.segments(thinking).filter((s) => s.loss).map((s) => (s.kind === 'text' ? s.text : '')), ['First.<|im_end|>', 'Hello.<|im_end|>']);
  // Writes only the roles: no assistant content appears in the rendering.
  const rolesOnly = "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '<|im_end|>' }}{% endfor %}";
  const dir = await modelFolder(HF_MODELS.qwen3, { 'tokenizer_config.json': { ...JSON.parse(await readFile(join(HF_MODELS.qwen3, 'tokenizer_config.json'), 'utf8')), chat_template: rolesOnly } });
  const chat = await loadChatTemplate(dir, tok);
  assert.throws(() => chat.segments([U, A] as Parameters<typeof chat.segments>[0]), (err: unknown) => err instanceof InvalidArgument && /tokenizer_config\.json.*message 1's content/.test((err as Error).message));
});
