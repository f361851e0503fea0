import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultClientAddress, defaultClientSecurity } from '../../../src/cli/client-env.js';

test('client address default', () => {
  assert.equal(defaultClientAddress({}), '127.0.0.1:50051');
  assert.equal(defaultClientAddress({ GENTUNE_ADDR: 'gentune:443' }), 'gentune:443');
});

test('client security defaults come from GENTUNE_TOKEN, GENTUNE_TLS_CA and GENTUNE_CLIENT_CERT/KEY', () => {
  assert.deepEqual(defaultClientSecurity({}), { token: '', tlsCa: '', tlsCert: '', tlsKey: '' });
  assert.deepEqual(
    defaultClientSecurity({ GENTUNE_TOKEN: ' t ', GENTUNE_TLS_CA: 'ca.pem', GENTUNE_CLIENT_CERT: 'c.pem', GENTUNE_CLIENT_KEY: 'c.key', GENTUNE_TLS_CERT: 'server.pem' }),
    { token: 't', tlsCa: 'ca.pem', tlsCert: 'c.pem', tlsKey: 'c.key' },
  );
});
