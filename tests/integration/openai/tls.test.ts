/**
 * The OpenAI HTTP API over TLS and mutual TLS from the same --tls-* files as
 * the gRPC port (src/server/tls-files.ts), with certificates made by openssl
 * and node:https as the client.
 */
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { after, before, describe, test } from 'node:test';
import { requirePeer, skipWithoutPeer } from '../../helpers/test-peer.js';
import { startHarness, type Harness } from '../helpers/harness.js';
import { makeTestCerts, opensslMissing, type TestCerts } from '../helpers/test-certs.js';

const missing = opensslMissing();
const skip = skipWithoutPeer(missing);

const TOKEN = 'tls-admin-token-0123456789';

/** GET `url` over https with `options`; resolves with the status, rejects when the handshake fails. */
function get(url: string, options: { ca?: Buffer; cert?: Buffer; key?: Buffer }): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ...options, headers: { authorization: `Bearer ${TOKEN}` } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the OpenAI HTTP API over TLS and mutual TLS', { skip }, () => {
  let certs: TestCerts;
  let tls: Harness;
  let mtls: Harness;
  before(async () => {
    requirePeer(missing);
    certs = makeTestCerts();
    tls = await startHarness({ http: true, security: { tlsCert: certs.serverCert, tlsKey: certs.serverKey, adminTokens: [TOKEN] } });
    mtls = await startHarness({ http: true, security: { tlsCert: certs.serverCert, tlsKey: certs.serverKey, tlsClientCa: certs.caCert } });
  });
  after(async () => {
    await tls?.close();
    await mtls?.close();
    certs?.remove();
  });

  test('TLS: https with the CA works; plaintext HTTP and an unknown CA do not', async () => {
    assert.match(tls.openaiBaseUrl, /^https:\/\/127\.0\.0\.1:\d+\/v1$/);
    assert.equal(await get(`${tls.openaiBaseUrl}/models`, { ca: certs.read(certs.caCert) }), 200);
    await assert.rejects(get(`${tls.openaiBaseUrl}/models`, { ca: certs.read(certs.otherCaCert) }), /self[- ]signed|unable to verify|certificate/i);
    await assert.rejects(fetch(tls.openaiBaseUrl.replace('https:', 'http:') + '/models'));
  });

  test('mutual TLS: a client certificate from the CA gets in; none, or one from another CA, does not', async () => {
    const ca = certs.read(certs.caCert);
    assert.equal(await get(`${mtls.openaiBaseUrl}/models`, { ca, cert: certs.read(certs.clientCert), key: certs.read(certs.clientKey) }), 200);
    await assert.rejects(get(`${mtls.openaiBaseUrl}/models`, { ca }));
    await assert.rejects(get(`${mtls.openaiBaseUrl}/models`, { ca, cert: certs.read(certs.otherClientCert), key: certs.read(certs.otherClientKey) }));
  });
});
