/**
 * The serving thread (worker_threads entry; started by threaded-engine.ts).
 * It hosts the in-process engine: base model, adapter registry and stores,
 * the decode loop, evaluation, and the fine-tune runner, which trains each
 * job in a worker of its own. The main thread keeps only gRPC and HTTP I/O.
 *
 * Every call from the main thread runs here as it would in-process; what it
 * produces (replies, stream items, metric events, log lines) is collected
 * during one turn of this thread's event loop and posted as one batch.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Cancelled } from '../../common/errors.js';
import { ChunkChannel } from '../chunk-channel.js';
import { buildEngine } from './serving-engine.js';
import type {
  AdapterRef,
  Engine,
  EvaluateParams,
  FineTuneSpec,
  GenerateParams,
  JobFilter,
} from '../engine-api.js';
import type { CallMethod, EngineWorkerBatch, EngineWorkerInput, FromEngineWorker, StreamMethod, ToEngineWorker } from './engine-protocol.js';
import { relayLogger } from './log-relay.js';
import { MetricsRecorder } from './metrics-relay.js';
import { fromWireError, toWireError, type WireError } from './wire-error.js';

const port = parentPort!;
const input = workerData as EngineWorkerInput;

/** How often the gauges go out when nothing else does (milliseconds). */
const SNAPSHOT_EVERY_MS = 1000;

/** What this turn produced; posted as one batch at the end of the turn. */
class Outbox {
  private logs: string[] = [];
  private replies: FromEngineWorker[] = [];
  private scheduled = false;

  constructor(private readonly recorder: MetricsRecorder) {}

  log(line: string): void {
    this.logs.push(line);
    this.schedule();
  }

  reply(message: FromEngineWorker): void {
    this.replies.push(message);
    this.schedule();
  }

  /** One stream item; consecutive items of a stream share a reply. */
  item(id: number, item: unknown): void {
    const last = this.replies.at(-1);
    if (last?.t === 'items' && last.id === id) last.items.push(item);
    else this.reply({ t: 'items', id, items: [item] });
  }

  schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // After this turn's microtasks: every chunk the decode step delivered is in.
    // The decode loop's own setImmediate may come first and start the next
    // step; it calls flushPending before it does, so nothing waits behind a
    // step. (Not process.nextTick: a caller that answers each reply with a new
    // call at once would keep this thread in its message handler, starving
    // the decode loop.)
    setImmediate(() => this.flushPending());
  }

  /** Posts what is waiting, if anything is (at a decode step boundary, or the scheduled flush). */
  flushPending(): void {
    if (this.scheduled) this.flush();
  }

  flush(): void {
    this.scheduled = false;
    // A decode step's tokens alone need no fresh gauges; anything else does (a reply, an end, a log line).
    const tokensOnly = this.logs.length === 0 && this.replies.every((r) => r.t === 'items');
    const batch: EngineWorkerBatch = {
      logs: this.logs,
      metrics: this.recorder.takeEvents(),
      snapshot: this.recorder.readIfDue(!tokensOnly),
      replies: this.replies,
    };
    this.logs = [];
    this.replies = [];
    try {
      port.postMessage(batch);
    } catch (err) {
      // A value that cannot be cloned (a bug): its caller gets the error, the rest of the batch goes out.
      batch.replies = batch.replies.map((r) => (cloneable(r) ? r : { t: 'error', id: 'id' in r ? r.id : 0, error: toWireError(err) }));
      port.postMessage(batch);
    }
  }
}

function cloneable(value: unknown): boolean {
  try {
    structuredClone(value);
    return true;
  } catch {
    return false;
  }
}

const recorder = new MetricsRecorder(() => outbox.schedule());
const outbox = new Outbox(recorder);
const log = relayLogger(input.logLevel, input.logBindings, (line) => outbox.log(line));
/** Per call or stream: aborted when the caller's signal aborts (or it stops reading). */
const controllers = new Map<number, AbortController>();
const uploads = new Map<number, ChunkChannel<Uint8Array>>();

let engine: Engine;
try {
  engine = await buildEngine(
    input.config,
    { log, adapterBudgetBytes: input.adapterBudgetBytes, metrics: recorder.metrics, maxConcurrentJobs: input.maxConcurrentJobs },
    { startedAtMs: input.startedAtMs, jobsInWorkers: true, onStepBoundary: () => stepBoundary() },
  );
  const identity = recorder.identity()!;
  outbox.reply({ t: 'ready', info: engine.info(), ...identity });
  setInterval(() => outbox.schedule(), SNAPSHOT_EVERY_MS).unref();
  port.on('message', receive);
} catch (err) {
  outbox.reply({ t: 'start-failed', error: toWireError(err) });
}

/** Readiness last told to the main thread. */
let readySent = true;

/** After every decode step: tell the main thread if readiness changed (the backend trapped), then post what the step produced. */
function stepBoundary(): void {
  const ready = engine?.isReady() ?? true;
  if (ready !== readySent) {
    readySent = ready;
    outbox.reply({ t: 'readiness', ready });
  }
  outbox.flushPending();
}

function receive(m: ToEngineWorker): void {
  switch (m.t) {
    case 'call':
      void answer(controllerFor(m.id, m.aborted), (signal) => invoke(m.method, m.args, signal)).finally(() => {
        if (m.method === 'submitFineTune' || m.method === 'cancelJob') recorder.jobChanged();
      });
      return;
    case 'stream':
      void stream(controllerFor(m.id, m.aborted), m.method, m.args);
      return;
    case 'upload': {
      const chunks = new ChunkChannel<Uint8Array>();
      uploads.set(m.id, chunks);
      const controller = controllerFor(m.id, m.aborted);
      void answer(controller, (signal) => engine.uploadDataset(m.meta, pulled(m.id, chunks), signal)).finally(() => uploads.delete(m.id));
      return;
    }
    case 'chunk':
      uploads.get(m.id)?.push(m.data);
      return;
    case 'chunks-end':
      if (m.error) uploads.get(m.id)?.fail(fromWireError(m.error));
      else uploads.get(m.id)?.end();
      return;
    case 'abort':
      abort(m.id, m.reason);
      return;
    case 'close':
      // The caller stopped reading: end the work as a client that went away would.
      controllers.get(m.id)?.abort(new Cancelled('the caller stopped reading the stream'));
      return;
  }
}

function abort(id: number, reason: WireError): void {
  controllers.get(id)?.abort(fromWireError(reason));
}

/** The work's own controller, aborted already when the caller's signal was. */
function controllerFor(id: number, aborted: WireError | undefined): { id: number; signal: AbortSignal } {
  const controller = new AbortController();
  if (aborted) controller.abort(fromWireError(aborted));
  controllers.set(id, controller);
  return { id, signal: controller.signal };
}

/** Runs one promise-returning call and replies with its value or error. */
async function answer({ id, signal }: { id: number; signal: AbortSignal }, run: (signal: AbortSignal) => Promise<unknown>): Promise<void> {
  try {
    outbox.reply({ t: 'result', id, value: await run(signal) });
  } catch (err) {
    outbox.reply({ t: 'error', id, error: toWireError(err) });
  } finally {
    controllers.delete(id);
  }
}

/** The engine's promise-returning methods, by name (arguments as the proxy sent them). */
function invoke(method: CallMethod, args: unknown[], signal: AbortSignal): Promise<unknown> {
  switch (method) {
    case 'evaluate': return engine.evaluate(args[0] as EvaluateParams, signal);
    case 'submitFineTune': return engine.submitFineTune(args[0] as FineTuneSpec);
    case 'getJob': return engine.getJob(args[0] as string);
    case 'listJobs': return engine.listJobs(args[0] as JobFilter);
    case 'cancelJob': return engine.cancelJob(args[0] as string);
    case 'jobEvents': return engine.jobEvents(args[0] as string);
    case 'listDatasets': return engine.listDatasets();
    case 'deleteDataset': return engine.deleteDataset(args[0] as string);
    case 'datasetContent': return engine.datasetContent(args[0] as string);
    case 'listAdapters': return engine.listAdapters();
    case 'loadAdapter': return engine.loadAdapter(args[0] as AdapterRef, args[1] as boolean);
    case 'unloadAdapter': return engine.unloadAdapter(args[0] as AdapterRef);
    case 'deleteAdapter': return engine.deleteAdapter(args[0] as AdapterRef);
    case 'setAdapterAlias': return engine.setAdapterAlias(args[0] as string, args[1] as string, args[2] as number);
    case 'drain': return engine.drain(args[0] as number);
  }
}

/** Runs one streaming call: every item as it comes, then 'end' (or 'error'). */
async function stream({ id, signal }: { id: number; signal: AbortSignal }, method: StreamMethod, args: unknown[]): Promise<void> {
  try {
    const items = openStream(method, args, signal);
    for await (const item of items) {
      // A job event: the job gauges in this batch must already show it (a client may scrape right after).
      if (method === 'watchJob') recorder.jobChanged();
      outbox.item(id, item);
    }
    outbox.reply({ t: 'end', id });
  } catch (err) {
    outbox.reply({ t: 'error', id, error: toWireError(err) });
  } finally {
    controllers.delete(id);
  }
}

/** The engine's async-iterable methods, by name (arguments as the proxy sent them). */
function openStream(method: StreamMethod, args: unknown[], signal: AbortSignal): AsyncIterable<unknown> {
  switch (method) {
    case 'generate': return engine.generate(args[0] as GenerateParams, signal);
    case 'watchJob': return engine.watchJob(args[0] as string, args[1] as number, signal);
    case 'evaluateStream': return engine.evaluateStream(args[0] as EvaluateParams, signal);
  }
}

/** An upload's chunks as the dataset store reads them; each one read makes room for the next. */
async function* pulled(id: number, chunks: ChunkChannel<Uint8Array>): AsyncGenerator<Uint8Array> {
  for (;;) {
    const next = await chunks.next();
    if (next.done) return;
    outbox.reply({ t: 'pull', id });
    yield next.value;
  }
}
