/**
 * Runs src/server/main.ts's serve() with the in-test engine, as `gentune serve`
 * would with the real one (used by serve-signals.test.ts). Logs go to stdout as
 * JSON lines; the first "gRPC server listening" line carries the address.
 */
import { resolveConfig } from '../../../src/engine/config.js';
import { serve } from '../../../src/server/main.js';
import { TestEngine } from './test-engine.js';

const config = resolveConfig({ host: '127.0.0.1', port: '0', logLevel: 'info', graceMs: process.argv[2] ?? '3000' }, {});
await serve(config, async (c) => new TestEngine(c, { stepMs: 5 }));
