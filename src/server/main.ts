/**
 * Runs the server until SIGTERM / SIGINT, then drains: stop accepting calls,
 * let calls in flight finish within --grace-ms (then cancel them), and drain
 * the engine with whatever is left of the grace period. A second signal exits
 * at once.
 */
import { pino, type Logger } from 'pino';
import type { GentuneConfig } from '../engine/config.js';
import type { EngineOptions } from '../engine/create-engine.js';
import type { Engine } from '../engine/engine-api.js';
import { startHttpEndpoint } from '../observability/http-endpoint.js';
import { GentuneMetrics } from '../observability/metrics.js';
import { startOpenAiServer, type RunningOpenAiServer } from '../http/openai-server.js';
import { Authorizer } from './auth.js';
import { CallTracker } from './call-tracker.js';
import { checkPortsFree } from './port-check.js';
import { startServer, type RunningServer } from './server.js';

/** Makes the engine: src/engine/create-engine.ts's `createEngine` (type-only import: TensorFlow.js loads when the caller imports it). */
export type EngineFactory = (config: GentuneConfig, options: EngineOptions) => Promise<Engine>;

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
  // Before the model loads: a port in use should fail the start now, not after the load.
  await checkPortsFree(config.host, [
    { flag: '--port', port: config.port },
    { flag: '--http-port', port: config.httpPort },
  ]);
  const signal = firstSignal(['SIGTERM', 'SIGINT'], log);
  // /healthz and /metrics answer while the model loads; /readyz turns 200 once it has, and 503 when draining starts.
  const metrics = new GentuneMetrics();
  let engine: Engine | undefined;
  let draining = false;
  const http = await startHttpEndpoint({ host: config.host, port: config.metricsPort, metrics, ready: () => !draining && engine?.isReady() === true, log });
  try {
    engine = await createEngine(config, { log, adapterBudgetBytes: config.adapterMemory, metrics: metrics.engine });
    // One tracker and one set of tokens for both front doors: the stream limit and draining cover gRPC and HTTP together.
    const tracker = new CallTracker();
    const auth = await Authorizer.fromConfig(config.security);
    const shared = { log, metrics: metrics.rpc, tracker };
    let server: RunningServer | undefined;
    let openai: RunningOpenAiServer | undefined;
    try {
      server = await startServer(engine, config, { ...shared, auth });
      openai = config.httpPort === 0 ? undefined : await startOpenAiServer(engine, config, { ...shared, auth: auth.enabled ? auth : undefined });
    } catch (err) {
      // A bind that fails now (a port taken since checkPortsFree): the engine's threads and a started
      // gRPC server would keep the process alive, so stop them, then fail the start.
      await server?.shutdown(0);
      await engine.drain(0);
      throw err;
    }

    log.info({ signal: await signal }, 'draining');
    draining = true;
    const deadline = Date.now() + config.graceMs;
    await Promise.all([server.shutdown(config.graceMs), openai?.shutdown(config.graceMs)]);
    await engine.drain(Math.max(0, deadline - Date.now()));
  } finally {
    await http.close();
  }
  log.info('stopped');
}
