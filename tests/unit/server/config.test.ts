// Tests of src/engine/config.ts (kept here with the server's tests: the
// server issue owns config.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { InvalidArgument } from '../../../src/common/errors.js';
import { addConfigOptions, defaultClientAddress, defaultConfig, envName, resolveConfig } from '../../../src/engine/config.js';

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

test('client address default', () => {
  assert.equal(defaultClientAddress({}), '127.0.0.1:50051');
  assert.equal(defaultClientAddress({ GENTUNE_ADDR: 'gentune:443' }), 'gentune:443');
});
