/**
 * EngineMetrics across the thread boundary. prom-client lives on the main
 * thread (the HTTP /metrics endpoint is there); the decode loop, registry and
 * job runner call their hooks in the serving worker. The worker side records
 * each call as a small tuple, and reads the gauges of the bound snapshot when
 * a batch goes out (a batch of streamed tokens alone reads them at most every
 * 100 ms); the main side replays the calls on the real
 * EngineMetrics, in order, and answers the snapshot's getters from the
 * latest values (they are read at scrape time and must stay synchronous).
 */
import type { EngineMetrics, EngineSnapshot } from '../engine-metrics.js';
import type { DeviceMemoryInfo, JobState } from '../engine-api.js';

/** Hooks that carry events (every method but bindEngine). */
type EventName = Exclude<keyof EngineMetrics, 'bindEngine'>;

/** One hook call: its name and arguments (numbers and strings, or a JobProgress). */
export type MetricEvent = [EventName, ...unknown[]];

/** The snapshot's getters, read. */
export interface SnapshotValues {
  sequences: { running: number; waiting: number };
  adapters: { resident: number; bytes: number };
  jobs: Partial<Record<JobState, number>>;
  memory: DeviceMemoryInfo;
}

/** The constant part of the snapshot, sent once when the engine is up. */
export interface SnapshotIdentity {
  backend: { name: string; device: string };
  model: string;
  version: string;
}

const EVENTS: readonly EventName[] = [
  'onQueued', 'onPrefill', 'onFirstToken', 'onNextToken', 'onFinish', 'onDecodeStep',
  'onAdapterLoad', 'onAdapterEvicted', 'onJobStarted', 'onJobProgress', 'onJobEvaluation',
];

/** Job counts walk every job: read them at most this often (milliseconds) unless a job changed. */
const JOBS_EVERY_MS = 250;

/**
 * The events of a decode step that only streams tokens: they change no gauge
 * but memory (the KV cache growing), so batches carrying only these (and
 * stream items) read the gauges at most every GAUGES_WHILE_DECODING_MS.
 */
const DECODING_EVENTS: ReadonlySet<EventName> = new Set(['onDecodeStep', 'onNextToken']);

/**
 * How stale the gauges may be in a batch of token items alone (milliseconds).
 * Reading them walks the registry and tfjs's memory, and cloning them grows
 * every batch: at batch 1 that cost a few percent of a decode step. Anything
 * else (a request joining or leaving, a reply, a job or adapter event) reads
 * them afresh, so a scrape after it sees it.
 */
const GAUGES_WHILE_DECODING_MS = 100;

/** Worker side: an EngineMetrics that records calls for the next batch. */
export class MetricsRecorder {
  /** Pass to the in-process engine. */
  readonly metrics: EngineMetrics;
  private events: MetricEvent[] = [];
  private snapshot?: EngineSnapshot;
  private jobs: Partial<Record<JobState, number>> = {};
  private jobsReadMs = -Infinity;
  private jobsChanged = false;
  /** When the gauges were last read (performance.now()). */
  private readMs = -Infinity;
  /** Something other than a token-streaming step happened since the gauges were last read. */
  private changed = true;

  /** `onEvent` is told that something was recorded (to schedule a batch). */
  constructor(onEvent: () => void) {
    const metrics: Partial<EngineMetrics> = {
      bindEngine: (s) => {
        this.snapshot = s;
      },
    };
    for (const name of EVENTS) {
      (metrics as Record<EventName, (...args: unknown[]) => void>)[name] = (...args) => {
        this.events.push([name, ...args]);
        if (!DECODING_EVENTS.has(name)) this.changed = true;
        if (name.startsWith('onJob')) this.jobsChanged = true;
        onEvent();
      };
    }
    this.metrics = metrics as EngineMetrics;
  }

  /** The bound snapshot's constant part (after createEngine has bound it). */
  identity(): SnapshotIdentity | undefined {
    const s = this.snapshot;
    return s && { backend: { ...s.backend }, model: s.model, version: s.version };
  }

  /** Events since the last call. */
  takeEvents(): MetricEvent[] {
    const out = this.events;
    this.events = [];
    return out;
  }

  /** A job was submitted, cancelled or logged an event: the next read counts jobs afresh. */
  jobChanged(): void {
    this.jobsChanged = true;
    this.changed = true;
  }

  /**
   * The gauges for a batch: read now when `force`d (the batch carries more
   * than stream items), when an event other than a decode step's was recorded
   * since the last read, or when that read is GAUGES_WHILE_DECODING_MS old;
   * otherwise undefined (the main side keeps the last values).
   */
  readIfDue(force: boolean): SnapshotValues | undefined {
    if (!force && !this.changed && performance.now() - this.readMs < GAUGES_WHILE_DECODING_MS) return undefined;
    return this.read();
  }

  /** The gauges now (job counts as of at most JOBS_EVERY_MS ago, unless a job changed since). */
  read(): SnapshotValues | undefined {
    const s = this.snapshot;
    if (!s) return undefined;
    const now = performance.now();
    this.readMs = now;
    this.changed = false;
    if (this.jobsChanged || now - this.jobsReadMs >= JOBS_EVERY_MS) {
      this.jobs = s.jobs();
      this.jobsReadMs = now;
      this.jobsChanged = false;
    }
    return { sequences: s.sequences(), adapters: s.adapters(), jobs: { ...this.jobs }, memory: s.memory() };
  }
}

/** Main side: replays recorded calls on the real metrics and serves the snapshot from the latest values. */
export class MetricsMirror {
  private values: SnapshotValues;

  constructor(
    private readonly target: EngineMetrics,
    identity: SnapshotIdentity,
    initial: SnapshotValues,
  ) {
    this.values = initial;
    target.bindEngine({
      backend: identity.backend,
      model: identity.model,
      version: identity.version,
      sequences: () => this.values.sequences,
      adapters: () => this.values.adapters,
      jobs: () => this.values.jobs,
      memory: () => this.values.memory,
    });
  }

  /** Applies one batch's events, then its snapshot. */
  apply(events: readonly MetricEvent[], snapshot: SnapshotValues | undefined): void {
    for (const [name, ...args] of events) {
      // EngineMetrics methods must not throw; a broken one must not take the engine's replies down with it.
      try {
        (this.target[name] as (...a: unknown[]) => void)(...args);
      } catch {
        // Ignored, as the in-process engine would have had to.
      }
    }
    if (snapshot) this.values = snapshot;
  }
}
