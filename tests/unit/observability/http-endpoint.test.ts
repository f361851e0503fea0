/** The HTTP endpoint on its own: routes, readiness, methods, shutdown with scrapers connected. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { startHttpEndpoint } from '../../../src/observability/http-endpoint.js';
import { GentuneMetrics } from '../../../src/observability/metrics.js';

async function withEndpoint(body: (url: string, state: { ready: boolean }, metrics: GentuneMetrics) => Promise<void>): Promise<void> {
  const metrics = new GentuneMetrics({ processMetrics: false });
  const state = { ready: false };
  const endpoint = await startHttpEndpoint({ host: '127.0.0.1', port: 0, metrics, ready: () => state.ready });
  try {
    await body(`http://127.0.0.1:${endpoint.port}`, state, metrics);
  } finally {
    await endpoint.close();
  }
}

test('/healthz is 200 while alive; /readyz follows readiness', async () => {
  await withEndpoint(async (url, state) => {
    assert.equal((await fetch(`${url}/healthz`)).status, 200);
    const notReady = await fetch(`${url}/readyz`);
    assert.equal(notReady.status, 503);
    assert.equal(await notReady.text(), 'not ready\n');
    state.ready = true;
    assert.equal((await fetch(`${url}/readyz`)).status, 200);
    state.ready = false; // draining
    assert.equal((await fetch(`${url}/readyz`)).status, 503);
    assert.equal((await fetch(`${url}/healthz`)).status, 200, 'a draining server is still alive');
  });
});

test('/metrics serves the registry in the Prometheus text format', async () => {
  await withEndpoint(async (url, _state, metrics) => {
    metrics.rpc.onCall('GetServerInfo', 'OK', 0.01);
    const res = await fetch(`${url}/metrics?foo=bar`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const body = await res.text();
    assert.match(body, /^# TYPE gentune_rpc_requests_total counter$/m);
    assert.match(body, /^gentune_rpc_requests_total\{api="grpc",method="GetServerInfo",code="OK"\} 1$/m);
  });
});

test('unknown paths are 404, other methods 405, HEAD has no body', async () => {
  await withEndpoint(async (url) => {
    assert.equal((await fetch(`${url}/`)).status, 404);
    assert.equal((await fetch(`${url}/metricsx`)).status, 404);
    const post = await fetch(`${url}/metrics`, { method: 'POST', body: 'x' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
    const head = await fetch(`${url}/healthz`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), '');
  });
});

test('a failing collector is a 500, and the endpoint keeps serving', async () => {
  const metrics = { contentType: 'text/plain', text: () => Promise.reject(new Error('boom')) };
  const errors: unknown[] = [];
  const endpoint = await startHttpEndpoint({ host: '127.0.0.1', port: 0, metrics, ready: () => true, log: { info() {}, error: (o: unknown) => errors.push(o) } as never });
  try {
    const url = `http://127.0.0.1:${endpoint.port}`;
    assert.equal((await fetch(`${url}/metrics`)).status, 500);
    assert.equal(errors.length, 1);
    assert.equal((await fetch(`${url}/healthz`)).status, 200);
  } finally {
    await endpoint.close();
  }
});

test('close() resolves with a keep-alive scraper connected, and is idempotent', async () => {
  const metrics = new GentuneMetrics({ processMetrics: false });
  const endpoint = await startHttpEndpoint({ host: '127.0.0.1', port: 0, metrics, ready: () => true });
  // One scrape over a keep-alive connection, which stays open afterwards.
  await new Promise<void>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: endpoint.port, path: '/metrics', headers: { connection: 'keep-alive' } }, (res) => {
      res.resume();
      res.on('end', () => resolve());
    });
    req.on('error', reject);
    req.end();
  });
  await Promise.all([endpoint.close(), endpoint.close()]);
  await assert.rejects(fetch(`http://127.0.0.1:${endpoint.port}/healthz`));
});

test('a port in use is an error', async () => {
  const metrics = new GentuneMetrics({ processMetrics: false });
  const first = await startHttpEndpoint({ host: '127.0.0.1', port: 0, metrics, ready: () => true });
  try {
    await assert.rejects(startHttpEndpoint({ host: '127.0.0.1', port: first.port, metrics, ready: () => true }), /EADDRINUSE/);
  } finally {
    await first.close();
  }
});
