/**
 * Runs the server until SIGTERM / SIGINT, then drains: stop accepting calls,
 * let calls in flight finish within --grace-ms (then cancel them), and drain
 * the engine with whatever is left of the grace period. A second signal exits
 * at once.
 */
import { pino, type Logger } from 'pino';
import type { GentuneConfig } from '../engine/config.js';
import type { Engine } from '../engine/engine-api.js';
import { startServer } from './server.js';

/** Makes the engine (the real one: src/engine/create-engine.ts). */
export type EngineFactory = (config: GentuneConfig) => Promise<Engine>;

/** Resolves on the first of `signals`; a second one exits the process with code 130. */
function firstSignal(signals: NodeJS.Signals[], log: Logger): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      for (const s of signals) process.removeListener(s, onSignal);
      for (const s of signals) {
        process.once(s, () => {
          log.warn({ signal: s }, 'second signal: exiting without draining');
          process.exit(130);
        });
      }
      resolve(signal);
    };
    for (const s of signals) process.on(s, onSignal);
  });
}

/** Starts the engine and the server, and runs them until a termination signal. */
export async function serve(config: GentuneConfig, createEngine: EngineFactory): Promise<void> {
  const log = pino({ level: config.logLevel });
  log.info({ model: config.model, backend: config.backend, dataDir: config.dataDir }, 'starting');
  const signal = firstSignal(['SIGTERM', 'SIGINT'], log);
  const engine = await createEngine(config);
  const server = await startServer(engine, config, { log });

  log.info({ signal: await signal }, 'draining');
  const deadline = Date.now() + config.graceMs;
  await server.shutdown(config.graceMs);
  await engine.drain(Math.max(0, deadline - Date.now()));
  log.info('stopped');
}
