/**
 * Wraps the real engine to observe what the server does to it: the
 * AbortSignals it passes, a readiness override (to test the server before the
 * model is "loaded"), and drain calls; and it can hold a generation after its
 * first chunks until the server aborts it, so tests of cancellation and
 * deadlines do not race the real engine's speed. Everything else passes
 * straight through.
 */
import type { Engine } from '../../../src/engine/engine-api.js';

export class SpyEngine implements Engine {
  /** Signals passed to generate / evaluate / watchJob, in call order. */
  readonly generateSignals: AbortSignal[] = [];
  readonly evaluateSignals: AbortSignal[] = [];
  readonly watchSignals: AbortSignal[] = [];
  /** When false, isReady() reports false whatever the inner engine says. */
  ready = true;
  /** Grace periods drain() was called with. */
  readonly drains: number[] = [];
  /**
   * While set, every generate call passes this many chunks through, then
   * waits for its signal to abort before it ends (the real engine's stream is
   * closed then; the same signal has cancelled it there).
   */
  holdAfterChunks: number | undefined;

  constructor(readonly inner: Engine) {}

  info: Engine['info'] = () => ({ ...this.inner.info(), ready: this.isReady() });
  isReady: Engine['isReady'] = () => this.ready && this.inner.isReady();
  generate: Engine['generate'] = (req, signal) => {
    this.generateSignals.push(signal);
    const hold = this.holdAfterChunks;
    const stream = this.inner.generate(req, signal);
    return hold === undefined ? stream : held(stream, hold, signal);
  };
  evaluate: Engine['evaluate'] = (req, signal) => {
    this.evaluateSignals.push(signal);
    return this.inner.evaluate(req, signal);
  };
  submitFineTune: Engine['submitFineTune'] = (spec) => this.inner.submitFineTune(spec);
  watchJob: Engine['watchJob'] = (id, from, signal) => {
    this.watchSignals.push(signal);
    return this.inner.watchJob(id, from, signal);
  };
  getJob: Engine['getJob'] = (id) => this.inner.getJob(id);
  listJobs: Engine['listJobs'] = (filter) => this.inner.listJobs(filter);
  cancelJob: Engine['cancelJob'] = (id) => this.inner.cancelJob(id);
  jobEvents: Engine['jobEvents'] = (id) => this.inner.jobEvents(id);
  uploadDataset: Engine['uploadDataset'] = (meta, chunks, signal) => this.inner.uploadDataset(meta, chunks, signal);
  listDatasets: Engine['listDatasets'] = () => this.inner.listDatasets();
  deleteDataset: Engine['deleteDataset'] = (id) => this.inner.deleteDataset(id);
  datasetContent: Engine['datasetContent'] = (id) => this.inner.datasetContent(id);
  listAdapters: Engine['listAdapters'] = () => this.inner.listAdapters();
  loadAdapter: Engine['loadAdapter'] = (ref, pin) => this.inner.loadAdapter(ref, pin);
  unloadAdapter: Engine['unloadAdapter'] = (ref) => this.inner.unloadAdapter(ref);
  deleteAdapter: Engine['deleteAdapter'] = (ref) => this.inner.deleteAdapter(ref);
  drain: Engine['drain'] = async (graceMs) => {
    this.drains.push(graceMs);
    await this.inner.drain(graceMs);
  };
}

/** The first `n` items of `stream`, then nothing until `signal` aborts. */
async function* held<T>(stream: AsyncIterable<T>, n: number, signal: AbortSignal): AsyncGenerator<T> {
  let passed = 0;
  for await (const item of stream) {
    yield item;
    if (++passed === n) break;
  }
  if (!signal.aborted) await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
}
