/**
 * Starts the real gRPC server on 127.0.0.1:0 over the real engine
 * (createEngine on a fresh copy of the fixture model, fixture-model.ts) with a
 * fresh data directory, and the real client. The engine is wrapped in a SpyEngine, which
 * only records what the server passes it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { GentuneClient, type GentuneClientOptions } from '../../../src/client/gentune-client.js';
import { defaultConfig, type GentuneConfig, type LimitsConfig } from '../../../src/engine/config.js';
import { createEngine } from '../../../src/engine/create-engine.js';
import { startOpenAiServer, type RunningOpenAiServer } from '../../../src/http/openai-server.js';
import type { RpcMetrics } from '../../../src/observability/rpc-metrics.js';
import { Authorizer } from '../../../src/server/auth.js';
import { CallTracker } from '../../../src/server/call-tracker.js';
import { startServer, type RunningServer } from '../../../src/server/server.js';
import { makeFixtureModel, removeFixtureModel, TEST_BACKEND } from './fixture-model.js';
import { SpyEngine } from './spy-engine.js';

/** Logs of server and engine: silent unless GENTUNE_TEST_LOG names a level. */
const testLog = () => pino({ level: process.env.GENTUNE_TEST_LOG ?? 'silent' });

export interface HarnessOptions {
  limits?: Partial<LimitsConfig>;
  graceMs?: number;
  /** config.idleConnectionMs; default the configuration's. */
  idleConnectionMs?: number;
  /**
   * Data directory to serve (e.g. one an earlier server used); it is kept on
   * close. Default: a fresh temp directory, removed on close.
   */
  dataDir?: string;
  client?: GentuneClientOptions;
  /** Initial readiness override (SpyEngine.ready). Default true. */
  ready?: boolean;
  /** Model folder to serve; kept on close. Default: a fresh copy of the fixture model, removed on close. */
  model?: string;
  /** Also start the OpenAI HTTP API on 127.0.0.1:0, sharing the gRPC server's tracker and tokens. Default false. */
  http?: boolean;
  /** Per-call metrics of both servers (GentuneMetrics.rpc); default none. */
  metrics?: RpcMetrics;
  /** Settings of config.security (tokens, TLS files); default none. */
  security?: Partial<GentuneConfig['security']>;
}

export interface Harness {
  config: GentuneConfig;
  engine: SpyEngine;
  server: RunningServer;
  client: GentuneClient;
  /** "127.0.0.1:<port>". */
  address: string;
  /** The OpenAI HTTP API, when options.http. */
  http?: RunningOpenAiServer;
  /** "http://127.0.0.1:<port>/v1", the SDK's baseURL, when options.http ('' otherwise). */
  openaiBaseUrl: string;
  /** Shuts the server down (grace 0 unless given), drains the engine, closes the client and removes the temp folders. */
  close(graceMs?: number): Promise<void>;
}

export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'gentune-it-'));
  const model = options.model ?? (await makeFixtureModel());
  const removeModel = () => options.model === undefined && removeFixtureModel(model);
  const base = defaultConfig();
  const config: GentuneConfig = {
    ...base,
    host: '127.0.0.1',
    port: 0,
    dataDir,
    model,
    backend: TEST_BACKEND,
    logLevel: 'silent',
    graceMs: options.graceMs ?? base.graceMs,
    idleConnectionMs: options.idleConnectionMs ?? base.idleConnectionMs,
    limits: { ...base.limits, ...options.limits },
    security: { ...base.security, ...options.security },
  };
  let engine: SpyEngine;
  try {
    engine = new SpyEngine(await createEngine(config, { log: testLog(), adapterBudgetBytes: config.adapterMemory }));
  } catch (err) {
    removeModel();
    if (options.dataDir === undefined) rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  engine.ready = options.ready ?? true;
  const tracker = new CallTracker();
  const auth = await Authorizer.fromConfig(config.security);
  const server = await startServer(engine, config, { log: testLog(), tracker, auth, metrics: options.metrics });
  const http = options.http ? await startOpenAiServer(engine, config, { log: testLog(), tracker, auth: auth.enabled ? auth : undefined, metrics: options.metrics, port: 0 }) : undefined;
  const address = `127.0.0.1:${server.port}`;
  const client = new GentuneClient(address, { defaultTimeoutMs: 10_000, ...options.client });
  return {
    config,
    engine,
    server,
    client,
    address,
    http,
    openaiBaseUrl: http ? `${http.url}/v1` : '',
    async close(graceMs = 0) {
      client.close();
      await Promise.all([server.shutdown(graceMs), http?.shutdown(graceMs)]);
      await engine.drain(0);
      removeModel();
      if (options.dataDir === undefined) rmSync(dataDir, { recursive: true, force: true });
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
