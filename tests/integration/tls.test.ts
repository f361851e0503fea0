// TLS and mutual TLS (src/server/tls.ts) on the real server and engine, with
// certificates made by openssl (helpers/test-certs.ts), through the real
// client library and the CLI's --tls-* / --token flags.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { status as Code } from '@grpc/grpc-js';
import { GentuneClient, type GentuneClientOptions } from '../../src/client/gentune-client.js';
import { rejectsWith } from './helpers/harness.js';
import { startEngineFixture, type EngineFixture, type LoggedServer } from './helpers/secure-server.js';
import { makeTestCerts, opensslMissing, type TestCerts } from './helpers/test-certs.js';
import { requirePeer, skipWithoutPeer } from '../helpers/test-peer.js';

const missing = opensslMissing();
const skip = skipWithoutPeer(missing);
if (skip) console.warn(`tls.test.ts: ${skip}`);

const BIN = fileURLToPath(new URL('../../bin/gentune.js', import.meta.url));
const TOKEN = randomBytes(24).toString('base64url');

/** Runs bin/gentune.js asynchronously (the server lives in this process). */
function gentune(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** One call over a fresh client with `options`; no retries, so a refused connection fails at once. */
async function infoWith(address: string, options: GentuneClientOptions): Promise<string> {
  const client = new GentuneClient(address, { defaultTimeoutMs: 20_000, retry: { maxAttempts: 1 }, ...options });
  try {
    return (await client.getServerInfo()).version;
  } finally {
    client.close();
  }
}

describe('TLS and mutual TLS', { skip }, () => {
  let fx: EngineFixture;
  let certs: TestCerts;
  let tls: LoggedServer;
  let mtls: LoggedServer;
  before(async () => {
    requirePeer(missing);
    certs = makeTestCerts();
    fx = await startEngineFixture();
    tls = await fx.serve({ tlsCert: certs.serverCert, tlsKey: certs.serverKey, adminTokens: [TOKEN] });
    mtls = await fx.serve({ tlsCert: certs.serverCert, tlsKey: certs.serverKey, tlsClientCa: certs.caCert });
  });
  after(async () => {
    await fx?.close();
    certs?.remove();
  });

  test('TLS: a client trusting the CA works (unary, stream, health); the start-up log says tls', async () => {
    const client = new GentuneClient(tls.address, { token: TOKEN, tls: { ca: certs.read(certs.caCert) }, defaultTimeoutMs: 30_000 });
    try {
      assert.ok((await client.getServerInfo()).version);
      assert.equal(await client.checkHealth(), 'SERVING');
      const out = await client.generateText({ prompt: 'Hi', sampling: { maxNewTokens: 3, temperature: 0 } });
      assert.ok(out.tokenIds.length > 0);
    } finally {
      client.close();
    }
    assert.equal(tls.logs.find((l) => l.msg === 'gRPC server listening')?.transport, 'tls');
    assert.equal(mtls.logs.find((l) => l.msg === 'gRPC server listening')?.transport, 'mtls');
  });

  test('TLS: a plaintext client, or one trusting another CA, cannot connect', async () => {
    await rejectsWith(infoWith(tls.address, { token: TOKEN }), Code.UNAVAILABLE);
    await rejectsWith(infoWith(tls.address, { token: TOKEN, tls: { ca: certs.read(certs.otherCaCert) } }), Code.UNAVAILABLE);
    // The system roots do not know the test CA either.
    await rejectsWith(infoWith(tls.address, { token: TOKEN, tls: {} }), Code.UNAVAILABLE);
  });

  test('TLS does not replace the token: without one, UNAUTHENTICATED', async () => {
    await rejectsWith(infoWith(tls.address, { tls: { ca: certs.read(certs.caCert) } }), Code.UNAUTHENTICATED);
  });

  test('mutual TLS: a client certificate signed by the CA gets in; none, or one from another CA, does not', async () => {
    const ca = certs.read(certs.caCert);
    assert.ok(await infoWith(mtls.address, { tls: { ca, cert: certs.read(certs.clientCert), key: certs.read(certs.clientKey) } }));
    await rejectsWith(infoWith(mtls.address, { tls: { ca } }), Code.UNAVAILABLE);
    await rejectsWith(infoWith(mtls.address, { tls: { ca, cert: certs.read(certs.otherClientCert), key: certs.read(certs.otherClientKey) } }), Code.UNAVAILABLE);
    await rejectsWith(infoWith(mtls.address, {}), Code.UNAVAILABLE);
  });

  test('bad certificate files fail the start, naming the flag and the file', async () => {
    const notPem = join(certs.dir, 'not.pem');
    writeFileSync(notPem, 'hello\n');
    const cases: [Parameters<EngineFixture['serve']>[0], RegExp][] = [
      [{ tlsCert: certs.serverCert, tlsKey: certs.clientKey }, /`--tls-key` .*client\.key does not match the certificate in `--tls-cert` .*server\.pem/],
      [{ tlsCert: join(certs.dir, 'nope.pem'), tlsKey: certs.serverKey }, /`--tls-cert` .*nope\.pem: cannot read it \(ENOENT\)/],
      [{ tlsCert: notPem, tlsKey: certs.serverKey }, /`--tls-cert` .*not\.pem: not a PEM certificate/],
      [{ tlsCert: certs.serverCert, tlsKey: notPem }, /`--tls-key` .*not\.pem: not a PEM private key/],
      [{ tlsCert: certs.serverCert, tlsKey: certs.serverKey, tlsClientCa: notPem }, /`--tls-client-ca` .*not\.pem: not a PEM certificate/],
    ];
    for (const [security, message] of cases) await assert.rejects(fx.serve(security), message);
  });

  test('mutual TLS on 0.0.0.0 without tokens is access control: no warning', async () => {
    const s = await fx.serve({ tlsCert: certs.serverCert, tlsKey: certs.serverKey, tlsClientCa: certs.caCert }, '0.0.0.0');
    assert.deepEqual(s.logs.filter((l) => l.level === 40), []);
  });

  test('CLI: --tls-ca with GENTUNE_TOKEN or --token-file; --tls-cert/--tls-key for mutual TLS', async () => {
    const ok = await gentune(['info', '--json', '--addr', tls.address, '--tls-ca', certs.caCert], { GENTUNE_TOKEN: TOKEN });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(JSON.parse(ok.stdout.trim().split('\n')[0]!).health, 'SERVING');
    const tokenFile = join(certs.dir, 'token');
    writeFileSync(tokenFile, `${TOKEN}\n`);
    const fromFile = await gentune(['adapters', 'list', '--json', '--addr', tls.address, '--tls-ca', certs.caCert, '--token-file', tokenFile], { GENTUNE_TOKEN: '' });
    assert.equal(fromFile.code, 0, fromFile.stderr);
    const noToken = await gentune(['adapters', 'list', '--addr', tls.address, '--tls-ca', certs.caCert], { GENTUNE_TOKEN: '' });
    assert.equal(noToken.code, 1);
    assert.match(noToken.stderr, /gentune: UNAUTHENTICATED: missing bearer token/);
    assert.ok(!noToken.stderr.includes(TOKEN));
    const mutual = await gentune(['info', '--json', '--addr', mtls.address, '--tls-ca', certs.caCert, '--tls-cert', certs.clientCert, '--tls-key', certs.clientKey]);
    assert.equal(mutual.code, 0, mutual.stderr);
    const half = await gentune(['info', '--addr', mtls.address, '--tls-ca', certs.caCert, '--tls-cert', certs.clientCert]);
    assert.equal(half.code, 1);
    assert.match(half.stderr, /`--tls-cert` and `--tls-key` go together/);
  });
});
