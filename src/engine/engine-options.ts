/** Options of createEngine (create-engine.ts), in a file of their own so that the engine's builders can take them without importing the composition root. */
import type { Logger } from 'pino';
import type { EngineMetrics } from './engine-metrics.js';

/** Things tests and embedders may set that the server's config does not carry. */
export interface EngineOptions {
  /** Default: pino at config.logLevel. */
  log?: Logger;
  /** Resident bytes of idle, unpinned adapters before eviction. */
  adapterBudgetBytes?: number;
  /** Where the engine reports its work (src/observability's Prometheus metrics); default: nowhere. */
  metrics?: EngineMetrics;
  /**
   * true (the default): the engine runs in a serving worker thread and each
   * fine-tune job in a worker of its own; the calling thread only forwards
   * calls, so model work never stalls its event loop. false: everything runs
   * on the calling thread (unit tests that need direct access, comparisons).
   */
  threads?: boolean;
  /** Fine-tune jobs trained at once (default 1); the others wait queued. */
  maxConcurrentJobs?: number;
}
