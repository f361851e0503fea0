/**
 * The OpenAI HTTP API's front door, with the official `openai` SDK and plain
 * fetch against the real server on 127.0.0.1:0: the model list, error bodies
 * in OpenAI's shape, body limits, auth refusals through the same tokens as
 * gRPC, and the api="openai" metrics label.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import OpenAI from 'openai';
import { GentuneMetrics } from '../../../src/observability/metrics.js';
import { FIXTURE_NAME } from '../helpers/fixture-model.js';
import { startHarness, type Harness } from '../helpers/harness.js';

let h: Harness;
before(async () => {
  h = await startHarness({ http: true, limits: { maxMessageBytes: 4096 } });
});
after(() => h.close());

test('GET /v1/models lists the base model, through the SDK', async () => {
  const client = new OpenAI({ baseURL: h.openaiBaseUrl, apiKey: 'unused' });
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.deepEqual(ids, [FIXTURE_NAME]);
  const one = await client.models.retrieve(FIXTURE_NAME);
  assert.equal(one.owned_by, 'gentune');
  await assert.rejects(client.models.retrieve('nope'), (err: unknown) => err instanceof OpenAI.NotFoundError && /`model` "nope"/.test(err.message));
});

test('errors are OpenAI-shaped: unknown endpoint 404, bad JSON 400; the request id is echoed', async () => {
  const missing = await fetch(`${h.openaiBaseUrl}/nothing`);
  assert.equal(missing.status, 404);
  const body = (await missing.json()) as { error: { message: string; type: string } };
  assert.match(body.error.message, /no such endpoint: GET \/v1\/nothing/);
  assert.equal(body.error.type, 'invalid_request_error');

  const bad = await fetch(`${h.openaiBaseUrl}/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"oops' });
  assert.equal(bad.status, 400);
  assert.match(((await bad.json()) as { error: { message: string } }).error.message, /request body is not valid JSON/);
  const ok = await fetch(`${h.openaiBaseUrl}/models`, { headers: { 'x-request-id': 'req-42' } });
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get('x-request-id'), 'req-42', 'the request id is echoed');
});

test('a request body over --max-message-bytes is 413 naming the limit', async () => {
  const res = await fetch(`${h.openaiBaseUrl}/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'x'.repeat(8000) }) });
  assert.equal(res.status, 413);
  const body = (await res.json()) as { error: { message: string; code: string } };
  assert.match(body.error.message, /limits\.max_message_bytes \(--max-message-bytes\) 4096/);
  assert.equal(body.error.code, 'payload_too_large');
});

test('auth: the gRPC tokens and roles hold on HTTP (401 without or with a wrong token)', async () => {
  const admin = 'admin-token-0123456789abcdef';
  const user = 'user-token-0123456789abcdefgh';
  const secured = await startHarness({ http: true, security: { adminTokens: [admin], userTokens: [user] } });
  try {
    const anonymous = await fetch(`${secured.openaiBaseUrl}/models`);
    assert.equal(anonymous.status, 401);
    assert.match(((await anonymous.json()) as { error: { message: string } }).error.message, /missing bearer token/);
    const wrong = new OpenAI({ baseURL: secured.openaiBaseUrl, apiKey: 'not-a-token-at-all-xx' });
    await assert.rejects(wrong.models.list(), (err: unknown) => err instanceof OpenAI.AuthenticationError);
    const ok = new OpenAI({ baseURL: secured.openaiBaseUrl, apiKey: user });
    assert.equal((await ok.models.list()).data.length, 1);
  } finally {
    await secured.close();
  }
});

test('HTTP calls are counted with api="openai" beside gRPC\'s api="grpc"', async () => {
  const metrics = new GentuneMetrics({ processMetrics: false });
  const m = await startHarness({ http: true, metrics: metrics.rpc });
  try {
    await fetch(`${m.openaiBaseUrl}/models`);
    await m.client.getServerInfo();
    const text = await metrics.text();
    assert.match(text, /^gentune_rpc_requests_total\{api="openai",method="models\.list",code="OK"\} 1$/m);
    assert.match(text, /^gentune_rpc_requests_total\{api="grpc",method="GetServerInfo",code="OK"\} 1$/m);
  } finally {
    await m.close();
  }
});

test('503 while the base model loads and while draining, as on gRPC', async () => {
  const loading = await startHarness({ http: true, ready: false });
  try {
    const res = await fetch(`${loading.openaiBaseUrl}/models`);
    assert.equal(res.status, 503);
    assert.match(((await res.json()) as { error: { message: string } }).error.message, /not ready: the base model is loading/);
    loading.engine.ready = true;
    assert.equal((await fetch(`${loading.openaiBaseUrl}/models`)).status, 200);
    loading.http!.shutdown(5_000).catch(() => undefined);
    // Draining refuses new calls at once, on both doors (one shared tracker).
    await assert.rejects(loading.client.getServerInfo(), (err: { code?: number }) => err.code === 14);
  } finally {
    await loading.close();
  }
});
