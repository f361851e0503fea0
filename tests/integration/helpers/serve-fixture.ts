/**
 * Runs src/server/main.ts's serve() with the real engine, as `gentune serve`
 * does (used by serve-signals.test.ts).
 *
 *   serve-fixture.ts MODEL_DIR DATA_DIR GRACE_MS [GENTUNE_* settings via env]
 *
 * Logs go to stdout as JSON lines; the first "gRPC server listening" line
 * carries the address, and an "engine options" line what serve() passed to
 * createEngine.
 */
import { resolveConfig } from '../../../src/engine/config.js';
import { createEngine } from '../../../src/engine/create-engine.js';
import { serve } from '../../../src/server/main.js';
import { TEST_BACKEND } from './fixture-model.js';

const [model, dataDir, graceMs] = process.argv.slice(2);
const config = resolveConfig({ host: '127.0.0.1', port: '0', metricsPort: '0', httpPort: '0', logLevel: 'info', backend: TEST_BACKEND, model, dataDir, graceMs });
await serve(config, (c, options) => {
  options.log?.info({ adapterBudgetBytes: options.adapterBudgetBytes }, 'engine options');
  return createEngine(c, options);
});
