/**
 * Wraps the real engine to observe what the server does to it: the
 * AbortSignals it passes, a readiness override (to test the server before the
 * model is "loaded"), and drain calls; and it can hold a generation after its
 * first chunks until the server aborts it, so tests of cancellation and
 * deadlines do not race the real engine's speed. Everything else passes
 * straight through.
 */
import type { Engine, FinishReason, GenerateChunk, GenerateParams } from '../../../src/engine/engine-api.js';

/** How a generation the server started ended: the real engine's finish reason, or 'closed' (its stream was closed with none). */
export type GenerationEnd = FinishReason | 'closed';

export class SpyEngine implements Engine {
  /** Signals passed to generate / evaluate / watchJob, in call order. */
  readonly generateSignals: AbortSignal[] = [];
  /** Params passed to generate, in call order. */
  readonly generateParams: GenerateParams[] = [];
  /** How each generate call ended in the real engine, in call order (settles when its stream ends). */
  readonly generateEnds: Promise<GenerationEnd>[] = [];
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
    this.generateParams.push(req);
    let ended!: (end: GenerationEnd) => void;
    this.generateEnds.push(new Promise((resolve) => (ended = resolve)));
    const hold = this.holdAfterChunks;
    const stream = observed(this.inner.generate(req, signal), ended);
    return hold === undefined ? stream : held(stream, hold, signal);
  };
  evaluate: Engine['evaluate'] = (req, signal) => {
    this.evaluateSignals.push(signal);
    return this.inner.evaluate(req, signal);
  };
  evaluateStream: Engine['evaluateStream'] = (req, signal) => {
    this.evaluateSignals.push(signal);
    return this.inner.evaluateStream(req, signal);
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
  setAdapterAlias: Engine['setAdapterAlias'] = (name, alias, version) => this.inner.setAdapterAlias(name, alias, version);
  drain: Engine['drain'] = async (graceMs) => {
    this.drains.push(graceMs);
    await this.inner.drain(graceMs);
  };
}

/** Passes `stream` through and reports how it ended. */
async function* observed(stream: AsyncIterable<GenerateChunk>, ended: (end: GenerationEnd) => void): AsyncGenerator<GenerateChunk> {
  let end: GenerationEnd = 'closed';
  try {
    for await (const chunk of stream) {
      if (chunk.finish) end = chunk.finish.reason;
      yield chunk;
    }
  } finally {
    ended(end);
  }
}

/**
 * The first `n` items of `stream`, then nothing until `signal` aborts; then
 * the rest of the real stream is read (not passed on) so that it ends as the
 * engine ends it, with the finish it sends after the abort.
 */
async function* held<T>(stream: AsyncIterable<T>, n: number, signal: AbortSignal): AsyncGenerator<T> {
  const it = stream[Symbol.asyncIterator]();
  for (let passed = 0; passed < n; passed++) {
    const item = await it.next();
    if (item.done) return;
    yield item.value;
  }
  try {
    if (!signal.aborted) await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
  } finally {
    // Also when the consumer closed this stream early: drain the real one to its end.
    for (;;) if ((await it.next()).done) break;
  }
}
