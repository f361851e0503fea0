/**
 * For the auth and TLS tests: one real engine over the fixture model, and
 * servers started on it with a given host and security settings, each with
 * its log captured (JSON lines) so tests can read warnings and check that no
 * token leaks into it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { defaultConfig, type GentuneConfig, type SecurityConfig } from '../../../src/engine/config.js';
import { createEngine } from '../../../src/engine/create-engine.js';
import type { Engine } from '../../../src/engine/engine-api.js';
import { startServer, type RunningServer } from '../../../src/server/server.js';
import { makeFixtureModel, removeFixtureModel, TEST_BACKEND } from './fixture-model.js';

/** A started server and what it logged. */
export interface LoggedServer {
  server: RunningServer;
  /** "127.0.0.1:<port>". */
  address: string;
  /** Every log line so far, parsed. */
  logs: Record<string, unknown>[];
  /** The raw log text so far. */
  logText(): string;
}

export interface EngineFixture {
  engine: Engine;
  config: GentuneConfig;
  /** Starts a server on this engine; resolves once it listens, rejects when start-up fails. */
  serve(security: Partial<SecurityConfig>, host?: string): Promise<LoggedServer>;
  /** Stops every server it started, drains the engine and removes the temp folders. */
  close(): Promise<void>;
}

export async function startEngineFixture(): Promise<EngineFixture> {
  const dataDir = mkdtempSync(join(tmpdir(), 'gentune-sec-'));
  const model = await makeFixtureModel();
  const base = defaultConfig();
  const config: GentuneConfig = { ...base, host: '127.0.0.1', port: 0, dataDir, model, backend: TEST_BACKEND, logLevel: 'info' };
  const engine = await createEngine(config, { log: pino({ level: 'silent' }), adapterBudgetBytes: config.adapterMemory });
  const servers: RunningServer[] = [];
  return {
    engine,
    config,
    async serve(security, host = '127.0.0.1') {
      let text = '';
      const log = pino({ level: 'debug' }, { write: (line: string) => void (text += line) });
      const server = await startServer(engine, { ...config, host, security: { ...base.security, ...security } }, { log });
      servers.push(server);
      return {
        server,
        address: `127.0.0.1:${server.port}`,
        get logs() {
          return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
        },
        logText: () => text,
      };
    },
    async close() {
      await Promise.all(servers.map((s) => s.shutdown(0)));
      await engine.drain(0);
      removeFixtureModel(model);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
