/**
 * The OpenAI Files API with the official SDK against the real server: create
 * (streamed multipart), list with pagination, retrieve, content, delete; 413
 * over --max-upload-bytes; a bad line named; `purpose` checked; nothing
 * stored on any error; admin needed to write, user enough to read.
 */
import assert from 'node:assert/strict';
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import OpenAI, { toFile } from 'openai';
import { startHarness, type Harness } from '../helpers/harness.js';

const ADMIN = 'admin-token-0123456789abcdef';
const USER = 'user-token-0123456789abcdefgh';
const MAX_UPLOAD = 4096;

const CHAT = [
  { messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello', weight: 1 }] },
  { messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b', weight: 0 }, { role: 'user', content: 'c' }, { role: 'assistant', content: 'd' }] },
];
const jsonl = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

let h: Harness;
let admin: OpenAI;
let user: OpenAI;
let dir: string;
before(async () => {
  h = await startHarness({ http: true, limits: { maxUploadBytes: MAX_UPLOAD }, security: { adminTokens: [ADMIN], userTokens: [USER] } });
  // maxRetries 0: a refused upload must be refused once, not retried into a pass.
  admin = new OpenAI({ baseURL: h.openaiBaseUrl, apiKey: ADMIN, maxRetries: 0 });
  user = new OpenAI({ baseURL: h.openaiBaseUrl, apiKey: USER, maxRetries: 0 });
  dir = mkdtempSync(join(tmpdir(), 'gentune-files-'));
});
after(async () => {
  await h.close();
  rmSync(dir, { recursive: true, force: true });
});

const stored = async () => (await h.engine.listDatasets()).map((d) => d.id);

test('files.create stores OpenAI chat-format JSONL (from a read stream); retrieve, content and list agree', async () => {
  const path = join(dir, 'chat.jsonl');
  const text = jsonl(CHAT);
  writeFileSync(path, text);
  const file = await admin.files.create({ file: createReadStream(path), purpose: 'fine-tune' });
  assert.equal(file.object, 'file');
  assert.equal(file.purpose, 'fine-tune');
  assert.equal(file.status, 'processed');
  assert.equal(file.filename, 'chat.jsonl');
  assert.equal(file.bytes, Buffer.byteLength(text));
  assert.ok(Math.abs(file.created_at - Date.now() / 1000) < 60, 'created_at is in epoch seconds');
  assert.deepEqual((file as unknown as { gentune: { format: string; num_examples: number } }).gentune.format, 'chat');

  const again = await user.files.retrieve(file.id);
  assert.deepEqual(again, file);
  assert.equal(await (await user.files.content(file.id)).text(), text, 'the content is the bytes as uploaded');
  const listed = [];
  for await (const f of user.files.list()) listed.push(f.id);
  assert.ok(listed.includes(file.id));
  await assert.rejects(user.files.retrieve('ds-nope'), (err: unknown) => err instanceof OpenAI.NotFoundError && /`file_id` "ds-nope"/.test(err.message));
});

test('files.list pages with after/limit, newest first', async () => {
  const ids = [];
  for (let i = 0; i < 3; i++) {
    ids.push((await admin.files.create({ file: await toFile(Buffer.from(jsonl([{ text: `page ${i}` }])), `p${i}.jsonl`), purpose: 'fine-tune' })).id);
  }
  const first = await user.files.list({ limit: 2 });
  assert.equal(first.data.length, 2);
  assert.equal(first.has_more, true);
  assert.deepEqual(first.data.map((f) => f.id), [ids[2], ids[1]]);
  const next = await user.files.list({ limit: 2, after: ids[1]! });
  assert.equal(next.data[0]!.id, ids[0]);
  // The SDK's auto-pagination follows has_more/after to the end without repeats.
  const all = [];
  for await (const f of user.files.list({ limit: 1 })) all.push(f.id);
  assert.deepEqual(all, [...new Set(all)]);
  assert.deepEqual(all.slice(0, 3), [ids[2], ids[1], ids[0]]);
});

test('files.delete removes the file; a user token may read but not write', async () => {
  const file = await admin.files.create({ file: await toFile(Buffer.from(jsonl([{ prompt: 'p', completion: 'c' }])), 'd.jsonl'), purpose: 'fine-tune' });
  await assert.rejects(user.files.delete(file.id), (err: unknown) => err instanceof OpenAI.PermissionDeniedError);
  await assert.rejects(
    user.files.create({ file: await toFile(Buffer.from(jsonl([{ text: 'x' }])), 'u.jsonl'), purpose: 'fine-tune' }),
    (err: unknown) => err instanceof OpenAI.PermissionDeniedError,
  );
  const deleted = await admin.files.delete(file.id);
  assert.deepEqual(deleted, { id: file.id, object: 'file', deleted: true });
  assert.ok(!(await stored()).includes(file.id));
  await assert.rejects(admin.files.retrieve(file.id), (err: unknown) => err instanceof OpenAI.NotFoundError);
});

test('a file over --max-upload-bytes is 413 naming the limit, and nothing is stored', async () => {
  const before = await stored();
  const big = jsonl(Array.from({ length: 200 }, (_, i) => ({ text: `line number ${i} of a file that is too large` })));
  assert.ok(big.length > MAX_UPLOAD);
  await assert.rejects(admin.files.create({ file: await toFile(Buffer.from(big), 'big.jsonl'), purpose: 'fine-tune' }), (err: unknown) => {
    assert.ok(err instanceof OpenAI.APIError, String(err));
    assert.equal(err.status, 413);
    assert.match(err.message, /limits\.max_upload_bytes \(--max-upload-bytes\) 4096/);
    return true;
  });
  assert.deepEqual(await stored(), before);
});

test('a bad line is 400 naming the line and the key; tool calls are refused by name; nothing is stored', async () => {
  const before = await stored();
  const tool = [CHAT[0], { messages: [{ role: 'user', content: 'q' }, { role: 'assistant', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }] }] }];
  await assert.rejects(admin.files.create({ file: await toFile(Buffer.from(jsonl(tool)), 'tool.jsonl'), purpose: 'fine-tune' }), (err: unknown) => {
    assert.ok(err instanceof OpenAI.BadRequestError, String(err));
    assert.match(err.message, /^400 line 2: `messages\[1\]\.tool_calls` is not supported/);
    return true;
  });
  const broken = `${JSON.stringify({ prompt: 'a', completion: 'b' })}\n{"prompt": "a"}\n`;
  await assert.rejects(admin.files.create({ file: await toFile(Buffer.from(broken), 'b.jsonl'), purpose: 'fine-tune' }), (err: unknown) =>
    err instanceof OpenAI.BadRequestError && /line 2: missing `completion`/.test(err.message),
  );
  assert.deepEqual(await stored(), before);
});

test('`purpose` must be fine-tune, before or after the file part; unknown form fields are refused by name', async () => {
  const before = await stored();
  const body = Buffer.from(jsonl([{ text: 'x' }]));
  await assert.rejects(
    admin.files.create({ file: await toFile(body, 'x.jsonl'), purpose: 'assistants' }),
    (err: unknown) => err instanceof OpenAI.BadRequestError && err.param === 'purpose' && /`purpose` must be "fine-tune"/.test(err.message),
  );
  // purpose before the file, and a missing purpose (sent as raw forms so the order is ours).
  const send = async (fields: [string, string | Blob, string?][]) => {
    const form = new FormData();
    for (const [k, v, name] of fields) (typeof v === 'string' ? form.append(k, v) : form.append(k, v, name));
    const res = await fetch(`${h.openaiBaseUrl}/files`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` }, body: form });
    return { status: res.status, body: (await res.json()) as { error?: { message: string; param: string | null }; id?: string } };
  };
  const first = await send([['purpose', 'batch'], ['file', new Blob([body]), 'x.jsonl']]);
  assert.equal(first.status, 400);
  assert.equal(first.body.error?.param, 'purpose');
  const missing = await send([['file', new Blob([body]), 'x.jsonl']]);
  assert.equal(missing.status, 400);
  assert.match(missing.body.error!.message, /`purpose` is required/);
  const extra = await send([['file', new Blob([body]), 'x.jsonl'], ['purpose', 'fine-tune'], ['expires_after', '3600']]);
  assert.equal(extra.status, 400);
  assert.match(extra.body.error!.message, /`expires_after` is not supported/);
  assert.deepEqual(await stored(), before, 'nothing stored by any refused upload');
  const ok = await send([['purpose', 'fine-tune'], ['file', new Blob([body]), 'x.jsonl']]);
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  const json = await fetch(`${h.openaiBaseUrl}/files`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: '{}' });
  assert.equal(json.status, 400);
});
