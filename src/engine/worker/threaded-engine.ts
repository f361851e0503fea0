/**
 * The Engine the gRPC server calls in threaded mode (the default): a proxy on
 * the main thread that forwards every call to the serving worker
 * (engine-worker.ts) and does no model work itself, so a decode step or a
 * training step never holds up gRPC or HTTP I/O.
 *
 * - Promise methods are request/reply messages; async iterables (generate,
 *   watchJob, evaluateStream) are streams of item batches, buffered here without limit
 *   (a generation is bounded by max_new_tokens, a job log by its steps, an
 *   evaluation's progress by its chunks of examples), so
 *   the worker never waits for a slow client.
 * - The caller's AbortSignal is forwarded; a caller that stops reading early
 *   is forwarded as such. Errors arrive as WireErrors and are rebuilt as the
 *   same GentuneError subclass, code and message.
 * - info() and isReady() stay synchronous: the info is cached from start-up,
 *   its device memory taken from the worker's latest gauges (at most ~1 s old).
 * - Metric events and gauges come with the worker's batches and are replayed
 *   on the caller's EngineMetrics here, where prom-client lives.
 * - drain() forwards, then terminates the worker (and with it any job worker).
 *
 * The worker is unref'd while no call is in flight, so an embedder's process
 * can exit without draining, as it could with the in-process engine.
 */
import type { Worker } from 'node:worker_threads';
import { pino, type Logger } from 'pino';
import { Unavailable } from '../../common/errors.js';
import { ChunkChannel } from '../chunk-channel.js';
import type { GentuneConfig } from '../config.js';
import type { EngineOptions } from '../engine-options.js';
import type {
  AdapterInfo,
  AdapterRef,
  DatasetInfo,
  DatasetUploadMeta,
  DeviceMemoryInfo,
  Engine,
  EvaluateEvent,
  EvaluateParams,
  EvaluateResult,
  FineTuneSpec,
  GenerateChunk,
  GenerateParams,
  JobEvent,
  JobFilter,
  JobInfo,
  ServerInfo,
} from '../engine-api.js';
import { type EngineMetrics, noMetrics } from '../engine-metrics.js';
import type {
  CallMethod,
  CallResult,
  EngineWorkerBatch,
  EngineWorkerInput,
  FromEngineWorker,
  StreamItem,
  StreamMethod,
  ToEngineWorker,
  WireArgs,
} from './engine-protocol.js';
import { lineWriter } from './log-relay.js';
import { MetricsMirror } from './metrics-relay.js';
import { startWorker } from './start-worker.js';
import { fromWireError, toWireError } from './wire-error.js';

type CallRequest = Extract<ToEngineWorker, { t: 'call' }>;
type StreamRequest = Extract<ToEngineWorker, { t: 'stream' }>;
type UploadRequest = Extract<ToEngineWorker, { t: 'upload' }>;

/** Upload chunks in flight to the worker before waiting for it to read one. */
const UPLOAD_WINDOW = 16;

interface PendingCall {
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

/** Starts the serving worker and resolves once its engine is up (rejects as createEngine would). */
export async function startThreadedEngine(config: GentuneConfig, options: EngineOptions): Promise<Engine> {
  const log = options.log ?? pino({ level: config.logLevel });
  const input: EngineWorkerInput = {
    config,
    adapterBudgetBytes: options.adapterBudgetBytes,
    maxConcurrentJobs: options.maxConcurrentJobs,
    logLevel: log.level,
    logBindings: log.bindings(),
    startedAtMs: Date.now(),
  };
  const worker = startWorker('engine-worker', import.meta.url, { workerData: input, name: 'gentune serving engine' });
  const engine = new ThreadedEngine(worker, log, options.metrics ?? noMetrics);
  await engine.started;
  return engine;
}

class ThreadedEngine implements Engine {
  /** Resolves when the worker's engine is up. */
  readonly started: Promise<void>;
  private startedResolve!: () => void;
  private startedReject!: (err: unknown) => void;
  private nextId = 1;
  private readonly calls = new Map<number, PendingCall>();
  private readonly streams = new Map<number, ChunkChannel<unknown>>();
  /** Upload id -> called when the worker has read a chunk. */
  private readonly uploads = new Map<number, () => void>();
  private readonly writeLine: (line: string) => void;
  private serverInfo?: ServerInfo;
  /** tf.memory() in the worker, as of its latest batch. */
  private deviceMemory?: DeviceMemoryInfo;
  private mirror?: MetricsMirror;
  /** Calls and streams in flight: the worker keeps the process alive while there are any. */
  private holds = 1;
  private accepting = true;
  /** The worker runs (false once it exited, failed or was terminated). */
  private alive = true;
  /** The serving engine says it can serve (false once its model backend trapped). */
  private workerReady = true;
  private drained: Promise<void> | null = null;

  constructor(
    private readonly worker: Worker,
    log: Logger,
    private readonly metrics: EngineMetrics,
  ) {
    this.writeLine = lineWriter(log);
    this.started = new Promise<void>((resolve, reject) => {
      this.startedResolve = resolve;
      this.startedReject = reject;
    });
    worker.on('message', (batch: EngineWorkerBatch) => this.receive(batch));
    worker.on('error', (err) => {
      log.error({ err }, 'serving engine thread failed');
      this.stopped(err);
    });
    worker.on('exit', (code) => this.stopped(new Error(`the serving engine thread exited with code ${code}`)));
  }

  info(): ServerInfo {
    const info = this.serverInfo!;
    const deviceMemory = { ...(this.deviceMemory ?? info.deviceMemory) };
    return { ...info, model: { ...info.model }, limits: { ...info.limits }, deviceMemory, ready: this.isReady() };
  }

  isReady(): boolean {
    return this.accepting && this.alive && this.workerReady;
  }

  generate(req: GenerateParams, signal: AbortSignal): AsyncIterable<GenerateChunk> {
    return this.stream('generate', [req], signal);
  }

  evaluate(req: EvaluateParams, signal: AbortSignal): Promise<EvaluateResult> {
    this.checkAccepting();
    return this.call('evaluate', [req], signal);
  }

  evaluateStream(req: EvaluateParams, signal: AbortSignal): AsyncIterable<EvaluateEvent> {
    this.checkAccepting();
    return this.stream('evaluateStream', [req], signal);
  }

  submitFineTune(spec: FineTuneSpec): Promise<JobInfo> {
    this.checkAccepting();
    return this.call('submitFineTune', [spec]);
  }

  watchJob(jobId: string, fromSequence: number, signal: AbortSignal): AsyncIterable<JobEvent> {
    return this.stream('watchJob', [jobId, fromSequence], signal);
  }

  getJob(jobId: string): Promise<JobInfo> {
    return this.call('getJob', [jobId]);
  }

  listJobs(filter: JobFilter): Promise<JobInfo[]> {
    return this.call('listJobs', [filter]);
  }

  cancelJob(jobId: string): Promise<JobInfo> {
    return this.call('cancelJob', [jobId]);
  }

  jobEvents(jobId: string): Promise<JobEvent[]> {
    return this.call('jobEvents', [jobId]);
  }

  async uploadDataset(meta: DatasetUploadMeta, chunks: AsyncIterable<Uint8Array>, signal: AbortSignal): Promise<DatasetInfo> {
    this.checkAccepting();
    const id = this.nextId++;
    let credit = UPLOAD_WINDOW;
    let settled = false;
    let wake: (() => void) | undefined;
    const wakeUp = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    this.uploads.set(id, () => {
      credit++;
      wakeUp();
    });
    const result = this.request<DatasetInfo>(id, { t: 'upload', id, meta }, signal);
    const done = result.then(
      () => undefined,
      () => undefined,
    );
    void done.then(() => {
      settled = true;
      wakeUp();
    });
    let pumpError: unknown;
    try {
      for await (const chunk of chunks) {
        while (credit === 0 && !settled) await new Promise<void>((resolve) => (wake = resolve));
        // The worker already answered (a bad line, an abort): stop reading the caller's stream.
        if (settled) break;
        credit--;
        const data = new Uint8Array(chunk);
        this.post({ t: 'chunk', id, data }, [data.buffer]);
      }
      if (!settled) this.post({ t: 'chunks-end', id });
    } catch (err) {
      pumpError = err;
      this.post({ t: 'chunks-end', id, error: toWireError(err) });
    }
    try {
      return await result;
    } catch (err) {
      // The caller's own stream failed: its error, not the copy that went round the worker.
      throw pumpError ?? err;
    } finally {
      this.uploads.delete(id);
    }
  }

  listDatasets(): Promise<DatasetInfo[]> {
    return this.call('listDatasets', []);
  }

  deleteDataset(datasetId: string): Promise<void> {
    return this.call('deleteDataset', [datasetId]);
  }

  datasetContent(datasetId: string): Promise<Uint8Array> {
    return this.call('datasetContent', [datasetId]);
  }

  listAdapters(): Promise<AdapterInfo[]> {
    return this.call('listAdapters', []);
  }

  loadAdapter(ref: AdapterRef, pin: boolean): Promise<AdapterInfo> {
    return this.call('loadAdapter', [ref, pin]);
  }

  unloadAdapter(ref: AdapterRef): Promise<AdapterInfo> {
    return this.call('unloadAdapter', [ref]);
  }

  deleteAdapter(ref: AdapterRef): Promise<void> {
    return this.call('deleteAdapter', [ref]);
  }

  setAdapterAlias(name: string, alias: string, version: number): Promise<AdapterInfo> {
    return this.call('setAdapterAlias', [name, alias, version]);
  }

  drain(graceMs: number): Promise<void> {
    this.drained ??= this.doDrain(graceMs);
    return this.drained;
  }

  private async doDrain(graceMs: number): Promise<void> {
    this.accepting = false;
    if (!this.alive) return;
    this.hold();
    try {
      await this.call('drain', [graceMs]);
    } finally {
      this.alive = false;
      this.worker.removeAllListeners('exit');
      await this.worker.terminate();
      this.failAll(new Unavailable('the server is shutting down'));
      this.release();
    }
  }

  /** One promise-returning call: `args` are the method's own parameters, checked against Engine. */
  private call<M extends CallMethod>(method: M, args: WireArgs<M>, signal?: AbortSignal): Promise<CallResult<M>> {
    const id = this.nextId++;
    // (TS cannot narrow a generic M to one member of the message union; the parameters' types are checked above.)
    return this.request<CallResult<M>>(id, { t: 'call', id, method, args } as CallRequest, signal);
  }

  /** Posts a call-like message and resolves with its reply; forwards `signal`'s abort. */
  private request<T>(id: number, message: CallRequest | UploadRequest, signal?: AbortSignal): Promise<T> {
    if (!this.alive) return Promise.reject(this.stoppedError());
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => this.post({ t: 'abort', id, reason: toWireError(signal!.reason) });
      const cleanup = () => {
        signal?.removeEventListener('abort', onAbort);
        this.release();
      };
      this.hold();
      this.calls.set(id, {
        resolve: (value) => {
          cleanup();
          resolve(value as T);
        },
        reject: (err) => {
          cleanup();
          reject(err);
        },
      });
      if (signal?.aborted) message.aborted = toWireError(signal.reason);
      else signal?.addEventListener('abort', onAbort, { once: true });
      try {
        this.post(message);
      } catch (err) {
        // Arguments that cannot be cloned (a bug of the caller): nothing was sent.
        this.calls.get(id)?.reject(err);
        this.calls.delete(id);
      }
    });
  }

  /** One streaming call: items as the worker sends them, ending when it says so. */
  private async *stream<M extends StreamMethod>(method: M, args: WireArgs<M>, signal: AbortSignal): AsyncGenerator<StreamItem<M>> {
    if (!this.alive) throw this.stoppedError();
    const id = this.nextId++;
    const items = new ChunkChannel<unknown>();
    const onAbort = () => this.post({ t: 'abort', id, reason: toWireError(signal.reason) });
    this.streams.set(id, items);
    this.hold();
    try {
      const message = { t: 'stream', id, method, args } as StreamRequest;
      if (signal.aborted) message.aborted = toWireError(signal.reason);
      else signal.addEventListener('abort', onAbort, { once: true });
      this.post(message);
      for (;;) {
        const next = await items.next();
        if (next.done) return;
        yield next.value as StreamItem<M>;
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      if (!items.isEnded && this.alive) this.post({ t: 'close', id });
      this.streams.delete(id);
      this.release();
    }
  }

  private receive(batch: EngineWorkerBatch): void {
    for (const line of batch.logs) this.writeLine(line);
    // Start-up first: the metrics mirror is made from the 'ready' reply.
    for (const r of batch.replies) if (r.t === 'ready' || r.t === 'start-failed') this.dispatch(r, batch);
    this.mirror?.apply(batch.metrics, batch.snapshot);
    if (batch.snapshot) this.deviceMemory = batch.snapshot.memory;
    for (const r of batch.replies) if (r.t !== 'ready' && r.t !== 'start-failed') this.dispatch(r, batch);
  }

  private dispatch(r: FromEngineWorker, batch: EngineWorkerBatch): void {
    switch (r.t) {
      case 'ready':
        this.serverInfo = r.info;
        this.mirror = new MetricsMirror(this.metrics, { backend: r.backend, model: r.model, version: r.version }, batch.snapshot!);
        this.release();
        this.startedResolve();
        return;
      case 'start-failed':
        this.alive = false;
        this.worker.removeAllListeners('exit');
        void this.worker.terminate();
        this.startedReject(fromWireError(r.error));
        return;
      case 'result':
        this.calls.get(r.id)?.resolve(r.value);
        this.calls.delete(r.id);
        return;
      case 'error': {
        const err = fromWireError(r.error);
        this.calls.get(r.id)?.reject(err);
        this.calls.delete(r.id);
        this.streams.get(r.id)?.fail(err);
        return;
      }
      case 'items': {
        const stream = this.streams.get(r.id);
        if (stream) for (const item of r.items) stream.push(item);
        return;
      }
      case 'end':
        this.streams.get(r.id)?.end();
        return;
      case 'pull':
        this.uploads.get(r.id)?.();
        return;
      case 'readiness':
        this.workerReady = r.ready;
        return;
    }
  }

  /** The worker is gone (crashed or exited): nothing in flight will get an answer. */
  private stopped(err: unknown): void {
    if (!this.alive) return;
    this.alive = false;
    this.startedReject(err);
    this.failAll(this.stoppedError());
  }

  private failAll(err: Error): void {
    for (const call of this.calls.values()) call.reject(err);
    this.calls.clear();
    for (const stream of this.streams.values()) stream.fail(err);
    for (const pull of this.uploads.values()) pull();
  }

  private stoppedError(): Error {
    return new Unavailable(this.accepting ? 'the serving engine stopped unexpectedly' : 'the server is shutting down');
  }

  private checkAccepting(): void {
    if (!this.accepting) throw new Unavailable('the server is shutting down');
    if (!this.alive) throw this.stoppedError();
  }

  private post(message: ToEngineWorker, transfer?: ArrayBuffer[]): void {
    if (this.alive) this.worker.postMessage(message, transfer);
  }

  private hold(): void {
    if (this.holds++ === 0) this.worker.ref();
  }

  private release(): void {
    if (--this.holds === 0) this.worker.unref();
  }
}
