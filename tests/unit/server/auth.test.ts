// Unit tests of the auth pieces that need no server: the Authorizer on plain
// Metadata, the role table's rules, token-file parsing and the exposure check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Metadata } from '@grpc/grpc-js';
import { PermissionDenied, Unauthenticated } from '../../../src/common/errors.js';
import { Authorizer } from '../../../src/server/auth.js';
import { requiredRole, roleAllows } from '../../../src/server/auth-roles.js';
import { exposureWarnings, isLoopbackHost } from '../../../src/server/exposure.js';
import { parseTokenFile } from '../../../src/server/token-file.js';

const ADMIN = 'a'.repeat(16) + '-admin';
const USER = 'u'.repeat(16) + '-user';
const md = (authorization?: string) => {
  const m = new Metadata();
  if (authorization !== undefined) m.set('authorization', authorization);
  return m;
};

test('admin implies user; unknown methods need admin (fail closed)', () => {
  assert.equal(roleAllows('admin', 'user'), true);
  assert.equal(roleAllows('admin', 'admin'), true);
  assert.equal(roleAllows('user', 'user'), true);
  assert.equal(roleAllows('user', 'admin'), false);
  assert.equal(requiredRole('Generate'), 'user');
  assert.equal(requiredRole('FineTune'), 'admin');
  assert.equal(requiredRole('SomeNewRpc'), 'admin');
  assert.equal(requiredRole('toString'), 'admin');
});

test('Authorizer: identifies by token, checks the role, throws the domain errors', () => {
  const auth = new Authorizer([
    { name: 'ops', role: 'admin', token: ADMIN },
    { name: 'web', role: 'user', token: USER },
  ]);
  assert.equal(auth.enabled, true);
  assert.deepEqual(auth.counts(), { user: 1, admin: 1 });
  assert.deepEqual(auth.authorize('FineTune', md(`Bearer ${ADMIN}`)), { name: 'ops', role: 'admin' });
  assert.deepEqual(auth.authorize('Generate', md(`bearer  ${USER} `)), { name: 'web', role: 'user' });
  assert.throws(() => auth.authorize('FineTune', md(`Bearer ${USER}`)), (e) => e instanceof PermissionDenied && /`FineTune` needs the admin role; the token `web` has user/.test(e.message));
  for (const bad of [undefined, '', 'Bearer', `Bearer ${USER.slice(1)}`, `Bearer ${USER}x`, `Token ${USER}`, USER, `Bearer ${USER} ${ADMIN}`]) {
    assert.throws(() => auth.authorize('Generate', md(bad)), (e) => e instanceof Unauthenticated && !e.message.includes(USER), String(bad));
  }
  const two = md(`Bearer ${USER}`);
  two.add('authorization', `Bearer ${ADMIN}`);
  assert.throws(() => auth.authorize('Generate', two), Unauthenticated);
});

test('Authorizer without tokens allows everything', () => {
  const auth = new Authorizer([]);
  assert.equal(auth.enabled, false);
  assert.equal(auth.authorize('DeleteAdapter', md()), undefined);
});

test('token file: YAML and JSON, every field checked, messages never quote the token', () => {
  const yaml = `# comment\ntokens:\n  - name: ci\n    role: admin\n    token: ${ADMIN}\n`;
  assert.deepEqual(parseTokenFile(yaml, 'f'), [{ name: 'ci', role: 'admin', token: ADMIN }]);
  const json = JSON.stringify({ tokens: [{ name: 'web', role: 'user', token: USER }] });
  assert.deepEqual(parseTokenFile(json, 'f'), [{ name: 'web', role: 'user', token: USER }]);
  assert.deepEqual(parseTokenFile('tokens: []', 'f'), []);
  const bad: [unknown, RegExp][] = [
    [{ tokens: [{ name: 'x', role: 'user', token: 'has space in it ok?' }] }, /^f: `tokens\[0\]\.token` must be 16\.\.4096 printable ASCII/],
    [{ tokens: [{ name: 'x', role: 'user' }] }, /`tokens\[0\]\.token`/],
    [{ tokens: [{ name: 'bad name', role: 'user', token: USER }] }, /`tokens\[0\]\.name` must be 1\.\.64 characters/],
    [{ tokens: [{ name: 'x', role: 'owner', token: USER }] }, /`tokens\[0\]\.role` must be "user" or "admin"/],
    [{ tokens: ['just-a-string'] }, /`tokens\[0\]` must be an object/],
    [{ tokens: { x: 1 } }, /expected a `tokens` list/],
    [[USER], /expected a `tokens` list/],
  ];
  for (const [doc, message] of bad) {
    assert.throws(() => parseTokenFile(JSON.stringify(doc), 'f'), (e: Error) => message.test(e.message) && !e.message.includes(USER), JSON.stringify(doc));
  }
  assert.throws(() => parseTokenFile(`tokens:\n  - token: "${USER}\n    bad: [`, 'f'), (e: Error) => /^f: not valid YAML\/JSON/.test(e.message) && !e.message.includes(USER));
});

test('loopback hosts', () => {
  for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', 'LOCALHOST', '::1', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', 'api.localhost']) {
    assert.equal(isLoopbackHost(h), true, h);
  }
  for (const h of ['0.0.0.0', '::', '[::]', '10.0.0.1', '128.0.0.1', 'gentune.example', '::2', 'localhost.example.com']) {
    assert.equal(isLoopbackHost(h), false, h);
  }
});

test('exposure warnings: open port without access control, or tokens in plaintext', () => {
  assert.deepEqual(exposureWarnings('127.0.0.1', false, 'plaintext'), []);
  assert.match(exposureWarnings('0.0.0.0', false, 'plaintext').join(), /NO access control/);
  assert.match(exposureWarnings('0.0.0.0', false, 'tls').join(), /NO access control/);
  assert.deepEqual(exposureWarnings('0.0.0.0', false, 'mtls'), []);
  assert.match(exposureWarnings('::', true, 'plaintext').join(), /bearer tokens travel in plaintext/);
  assert.deepEqual(exposureWarnings('0.0.0.0', true, 'tls'), []);
});
