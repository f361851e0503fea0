// How the bearer-token check reads the `authorization` header it gets on both
// front doors (issue 18): several values are refused, never "first wins", and
// a refusal says what is wrong with the value rather than "missing".
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { GentuneClient } from '../../src/client/gentune-client.js';
import { fileURLToPath } from 'node:url';
import { requirePeer, skipWithoutPeer } from '../helpers/test-peer.js';
import { startHarness, type Harness } from './helpers/harness.js';

const Code = grpc.status;
const TOKEN = 'auth-headers-test-token-0123456789';
const INFO = '/gentune.v1.ModelService/GetServerInfo';

const PYTHON = '/usr/bin/python3';
const REPEATED = fileURLToPath(new URL('./python/repeated_authorization.py', import.meta.url));
const noPython = !(existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import grpc']).status === 0) && `${PYTHON} with grpcio not available (apt-get install -y python3-grpcio)`;

/** GetServerInfo from Debian's grpcio, which sends every value as its own `authorization` entry. */
function pythonStatus(address: string, values: string[]): Promise<{ code: string; details: string }> {
  return new Promise((resolve, reject) =>
    execFile(PYTHON, [REPEATED, address, ...values], { timeout: 60_000, env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' } }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(JSON.parse(stdout) as { code: string; details: string }),
    ),
  );
}

/** GetServerInfo over grpc-js with these `authorization` values (empty request); resolves to its status. */
function grpcStatus(address: string, values: string[]): Promise<{ code: number; details: string }> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  for (const v of values) md.add('authorization', v);
  const raw = (b: Buffer) => b;
  return new Promise((resolve) => {
    client.makeUnaryRequest(INFO, raw, raw, Buffer.alloc(0), md, {}, (err) => {
      client.close();
      resolve(err ? { code: err.code, details: err.details } : { code: Code.OK, details: '' });
    });
  });
}

/** GET /v1/models with raw header lines (`authorization` repeated as given); resolves to status and error message. */
function httpStatus(h: Harness, authorization: string[]): Promise<{ status: number; message: string }> {
  const url = new URL(`${h.openaiBaseUrl}/models`);
  const headers = ['host', url.host, ...authorization.flatMap((v) => ['authorization', v])];
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'GET', headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, message: res.statusCode === 200 ? '' : (JSON.parse(body) as { error: { message: string } }).error.message }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('authorization header', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ http: true, security: { userTokens: [TOKEN] } });
  });
  after(() => h.close());

  test('HTTP: several `authorization` headers are refused whichever comes first, naming how many', async () => {
    assert.equal((await httpStatus(h, [`Bearer ${TOKEN}`])).status, 200);
    for (const values of [[`Bearer ${TOKEN}`, 'Bearer not-the-token-at-all-0000'], [`Bearer ${TOKEN}`, `Bearer ${TOKEN}`]]) {
      const r = await httpStatus(h, values);
      assert.equal(r.status, 401, JSON.stringify(values));
      assert.match(r.message, /2 `authorization` headers: send exactly one `Bearer <token>`/);
    }
  });

  test('gRPC: several `authorization` values (from grpcio; Node keeps only the first of them) are refused whichever comes first', async (t) => {
    if (skipWithoutPeer(noPython)) return t.skip(noPython || undefined);
    requirePeer(noPython);
    assert.equal((await pythonStatus(h.address, [`Bearer ${TOKEN}`])).code, 'OK');
    for (const values of [[`Bearer ${TOKEN}`, 'Bearer not-the-token-at-all-0000'], [`Bearer ${TOKEN}`, `Bearer ${TOKEN}`]]) {
      const r = await pythonStatus(h.address, values);
      assert.equal(r.code, 'UNAUTHENTICATED', JSON.stringify(values));
      assert.match(r.details, /^2 `authorization` metadata values: send exactly one `Bearer <token>`/);
    }
  });

  test('a malformed value says what is wrong with it', async () => {
    const cases: [string, RegExp][] = [
      [`Bearer ${TOKEN.slice(0, 5)} ${TOKEN.slice(5)}`, /the bearer token has a space in it/],
      [`Basic ${TOKEN}`, /must use the Bearer scheme \(`Bearer <token>`\), got `Basic`/],
      ['Bearer', /has no token after `Bearer`/],
    ];
    for (const [value, message] of cases) {
      const g = await grpcStatus(h.address, [value]);
      assert.equal(g.code, Code.UNAUTHENTICATED, value);
      assert.match(g.details, message, value);
      const r = await httpStatus(h, [value]);
      assert.equal(r.status, 401, value);
      assert.match(r.message, message, value);
    }
  });

  test('gRPC: a value with a leading or trailing space never arrives (HTTP/2 drops it); the refusal says so', async () => {
    for (const value of [`Bearer ${TOKEN} `, ` Bearer ${TOKEN}`]) {
      const g = await grpcStatus(h.address, [value]);
      assert.equal(g.code, Code.UNAUTHENTICATED, JSON.stringify(value));
      assert.match(g.details, /no `authorization` metadata arrived.*leading or trailing whitespace/, JSON.stringify(value));
    }
  });

  test('the client library refuses a token with whitespace before it sends anything, naming where', () => {
    assert.throws(() => new GentuneClient(h.address, { token: `${TOKEN} ` }), /`token` has whitespace at character 35/);
    assert.throws(() => new GentuneClient(h.address, { token: `${TOKEN}\n` }), /`token` has whitespace at character 35/);
  });
});
