/**
 * Starts the real gRPC server on 127.0.0.1:0 with the real client.
 *
 * The engine underneath comes from `makeEngine`. To run the whole integration
 * suite against the real engine, change its one line to:
 *   return (await import('../../../src/engine/create-engine.js')).createEngine(config);
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { GentuneClient, type GentuneClientOptions } from '../../../src/client/gentune-client.js';
import { defaultConfig, type GentuneConfig, type LimitsConfig } from '../../../src/engine/config.js';
import type { Engine } from '../../../src/engine/engine-api.js';
import { startServer, type RunningServer } from '../../../src/server/server.js';
import { SpyEngine } from './spy-engine.js';
import { TestEngine } from './test-engine.js';

/** The engine under test. */
export async function makeEngine(config: GentuneConfig): Promise<Engine> {
  return new TestEngine(config, { stepMs: 2 });
}

export interface HarnessOptions {
  limits?: Partial<LimitsConfig>;
  graceMs?: number;
  /** Engine factory; default {@link makeEngine}. */
  engine?: (config: GentuneConfig) => Promise<Engine>;
  client?: GentuneClientOptions;
  /** Initial readiness override (SpyEngine.ready). Default true. */
  ready?: boolean;
}

export interface Harness {
  config: GentuneConfig;
  engine: SpyEngine;
  server: RunningServer;
  client: GentuneClient;
  /** "127.0.0.1:<port>". */
  address: string;
  /** Shuts the server down (grace 0 unless given) and closes the client. */
  close(graceMs?: number): Promise<void>;
}

export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const dataDir = mkdtempSync(join(tmpdir(), 'gentune-it-'));
  const base = defaultConfig();
  const config: GentuneConfig = {
    ...base,
    host: '127.0.0.1',
    port: 0,
    dataDir,
    logLevel: 'silent',
    graceMs: options.graceMs ?? base.graceMs,
    limits: { ...base.limits, ...options.limits },
  };
  const engine = new SpyEngine(await (options.engine ?? makeEngine)(config));
  engine.ready = options.ready ?? true;
  const server = await startServer(engine, config, { log: pino({ level: process.env.GENTUNE_TEST_LOG ?? 'silent' }) });
  const address = `127.0.0.1:${server.port}`;
  const client = new GentuneClient(address, { defaultTimeoutMs: 10_000, ...options.client });
  return {
    config,
    engine,
    server,
    client,
    address,
    async close(graceMs = 0) {
      client.close();
      await server.shutdown(graceMs);
      await engine.drain(0);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Resolves when `predicate` holds, polling every 5 ms; rejects after `timeoutMs`. */
export async function eventually(predicate: () => boolean, timeoutMs = 2000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Asserts that `promise` rejects with gRPC `code` and details matching `details`. */
export async function rejectsWith(promise: Promise<unknown>, code: number, details?: RegExp | string): Promise<void> {
  await assert.rejects(promise, (err: { code?: number; details?: string }) => {
    assert.equal(err.code, code, `expected code ${code}, got ${err.code}: ${err.details}`);
    if (typeof details === 'string') assert.equal(err.details, details);
    else if (details) assert.match(err.details ?? '', details);
    return true;
  });
}

/** Drains an async iterable into an array. */
export async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}
