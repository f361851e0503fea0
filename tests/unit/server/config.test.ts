// Tests of src/engine/config.ts (kept here with the server's tests: the
// server issue owns config.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { InvalidArgument } from '../../../src/common/errors.js';
import { addConfigOptions, defaultConfig, envName, resolveConfig } from '../../../src/engine/config.js';

function parse(argv: string[], env: Record<string, string> = {}) {
  const cmd = addConfigOptions(new Command('serve').exitOverride());
  cmd.parse(argv, { from: 'user' });
  return resolveConfig(cmd.opts(), env);
}

test('defaults', () => {
  const c = defaultConfig();
  assert.equal(c.host, '127.0.0.1');
  assert.equal(c.port, 50051);
  assert.equal(c.metricsPort, 9464);
  assert.equal(c.dataDir, './data');
  assert.equal(c.model, 'models/gentune-mini');
  assert.equal(c.backend, 'auto');
  assert.equal(c.logLevel, 'info');
  assert.equal(c.logPrompts, false);
  assert.equal(c.limits.maxNewTokens, 256);
  assert.ok(c.limits.maxUploadBytes > 0 && c.graceMs > 0);
  assert.equal(c.adapterMemory, 512 * 1024 * 1024);
});

test('--adapter-memory (bytes) comes from the flag or GENTUNE_ADAPTER_MEMORY', () => {
  assert.equal(parse(['--adapter-memory', '1048576']).adapterMemory, 1048576);
  assert.equal(parse([], { GENTUNE_ADAPTER_MEMORY: '0' }).adapterMemory, 0);
  assert.equal(parse(['--adapter-memory', '2048'], { GENTUNE_ADAPTER_MEMORY: '4096' }).adapterMemory, 2048);
  assert.throws(() => parse(['--adapter-memory', '512MiB']), /`--adapter-memory` must be an integer in 0\.\.\d+, got "512MiB"$/);
  assert.throws(() => parse([], { GENTUNE_ADAPTER_MEMORY: '-1' }), /`--adapter-memory` .* got "-1" \(from GENTUNE_ADAPTER_MEMORY\)/);
});

test('--max-concurrent-jobs (default 1) comes from the flag or GENTUNE_MAX_CONCURRENT_JOBS', () => {
  assert.equal(defaultConfig().limits.maxConcurrentJobs, 1);
  assert.equal(parse(['--max-concurrent-jobs', '3']).limits.maxConcurrentJobs, 3);
  assert.equal(parse([], { GENTUNE_MAX_CONCURRENT_JOBS: '2' }).limits.maxConcurrentJobs, 2);
  assert.throws(() => parse(['--max-concurrent-jobs', '0']), /`--max-concurrent-jobs` must be an integer in 1\.\.64, got "0"$/);
});

test('flags beat GENTUNE_* variables, which beat defaults', () => {
  const c = parse(['--port', '6000', '--max-new-tokens', '32', '--log-prompts'], {
    GENTUNE_PORT: '7000',
    GENTUNE_BACKEND: 'wasm',
    GENTUNE_MAX_QUEUE: '5',
    GENTUNE_DATA_DIR: '/var/gentune',
  });
  assert.equal(c.port, 6000);
  assert.equal(c.backend, 'wasm');
  assert.equal(c.limits.maxNewTokens, 32);
  assert.equal(c.limits.maxQueue, 5);
  assert.equal(c.dataDir, '/var/gentune');
  assert.equal(c.logPrompts, true);
});

test('environment names follow the flags', () => {
  assert.equal(envName('maxConcurrentStreams'), 'GENTUNE_MAX_CONCURRENT_STREAMS');
  assert.equal(envName('graceMs'), 'GENTUNE_GRACE_MS');
});

test('errors name the flag, the value and the variable it came from', () => {
  assert.throws(() => parse(['--port', 'abc']), (e: unknown) => e instanceof InvalidArgument && e.message === '`--port` must be an integer in 0..65535, got "abc"');
  assert.throws(() => parse([], { GENTUNE_PORT: '70000' }), /`--port` must be an integer in 0\.\.65535, got "70000" \(from GENTUNE_PORT\)$/);
  assert.throws(() => parse(['--backend', 'tpu']), /`--backend` must be one of auto, tensorflow, webgpu, wasm, cpu, got "tpu"/);
  assert.throws(() => parse(['--max-new-tokens', '0']), /`--max-new-tokens` must be an integer in 1\.\./);
  assert.throws(() => parse(['--grace-ms', '-5']), /`--grace-ms`/);
  assert.throws(() => parse([], { GENTUNE_LOG_PROMPTS: 'maybe' }), /`--log-prompts` must be true or false, got "maybe" \(from GENTUNE_LOG_PROMPTS\)/);
});

test('security: off by default; TLS files and the token file from flags or GENTUNE_*', () => {
  assert.deepEqual(defaultConfig().security, { tokenFile: '', adminTokens: [], userTokens: [], tlsCert: '', tlsKey: '', tlsClientCa: '' });
  const c = parse(['--tls-cert', 'server.pem', '--tls-key', 'server.key', '--token-file', '/etc/gentune/tokens.yaml'], { GENTUNE_TLS_CLIENT_CA: 'ca.pem' });
  assert.equal(c.security.tlsCert, 'server.pem');
  assert.equal(c.security.tlsKey, 'server.key');
  assert.equal(c.security.tlsClientCa, 'ca.pem');
  assert.equal(c.security.tokenFile, '/etc/gentune/tokens.yaml');
  assert.equal(parse([], { GENTUNE_TOKEN_FILE: 't.yaml' }).security.tokenFile, 't.yaml');
});

test('security: tokens come from the environment only, comma-separated, and errors never quote them', () => {
  const admin = 'A'.repeat(20);
  const c = parse([], { GENTUNE_ADMIN_TOKEN: admin, GENTUNE_USER_TOKEN: ` ${'u'.repeat(16)}, ${'v'.repeat(16)} ` });
  assert.deepEqual(c.security.adminTokens, [admin]);
  assert.deepEqual(c.security.userTokens, ['u'.repeat(16), 'v'.repeat(16)]);
  // No flag takes a token: flags show in `ps`.
  assert.deepEqual(addConfigOptions(new Command('serve')).options.map((o) => o.long).filter((f) => /-token(-file)?$/.test(f ?? '')), ['--token-file']);
  const short = 'sh0rt-secret';
  assert.throws(
    () => parse([], { GENTUNE_USER_TOKEN: `${'u'.repeat(16)},${short}` }),
    (e: unknown) => e instanceof InvalidArgument && /`GENTUNE_USER_TOKEN` token 2 must be 16\.\.4096 printable ASCII characters without spaces, got 12 characters/.test(e.message) && !e.message.includes(short),
  );
});

test('security: --tls-cert and --tls-key go together; --tls-client-ca needs them', () => {
  assert.throws(() => parse(['--tls-cert', 'a.pem']), /`--tls-cert` and `--tls-key` go together/);
  assert.throws(() => parse([], { GENTUNE_TLS_KEY: 'a.key' }), /`--tls-cert` and `--tls-key` go together/);
  assert.throws(() => parse(['--tls-client-ca', 'ca.pem']), /`--tls-client-ca` \(mutual TLS\) needs `--tls-cert` and `--tls-key`/);
});

test('--dawn-options (comma-separated) comes from the flag or GENTUNE_DAWN_OPTIONS; none by default', () => {
  assert.deepEqual(defaultConfig().dawnOptions, []);
  assert.deepEqual(parse(['--dawn-options', 'backend=vulkan, adapter=H200']).dawnOptions, ['backend=vulkan', 'adapter=H200']);
  assert.deepEqual(parse([], { GENTUNE_DAWN_OPTIONS: 'adapter=H200' }).dawnOptions, ['adapter=H200']);
});

test('--wasm-threads is auto (by model size) or a count', () => {
  assert.equal(defaultConfig().wasmThreads, 'auto');
  assert.equal(parse(['--wasm-threads', '2']).wasmThreads, 2);
  assert.equal(parse([], { GENTUNE_WASM_THREADS: 'auto' }).wasmThreads, 'auto');
  assert.throws(() => parse(['--wasm-threads', 'many']), /`--wasm-threads` must be auto or an integer in 1\.\.64, got "many"$/);
  assert.throws(() => parse(['--wasm-threads', '0']), /`--wasm-threads` must be auto or an integer in 1\.\.64, got "0"$/);
});

test('--role (default all), leases and the store poll: from flags or GENTUNE_*, renewal at most a third of the lease', () => {
  const d = defaultConfig();
  assert.deepEqual([d.role, d.leaseTtlMs, d.leaseRenewMs, d.storePollMs], ['all', 10_000, 2_000, 250]);
  assert.equal(parse(['--role', 'serve']).role, 'serve');
  assert.equal(parse([], { GENTUNE_ROLE: 'train' }).role, 'train');
  assert.throws(() => parse(['--role', 'trainer']), /`--role` must be one of serve, train, all, got "trainer"$/);
  assert.equal(parse(['--lease-ttl-ms', '900', '--lease-renew-ms', '300']).leaseRenewMs, 300);
  assert.throws(() => parse(['--lease-ttl-ms', '900', '--lease-renew-ms', '301']), /`--lease-renew-ms` must be at most a third of `--lease-ttl-ms` 900, got 301$/);
  assert.throws(() => parse(['--store-poll-ms', '5']), /`--store-poll-ms` must be an integer in 10\.\./);
});
