/**
 * Fine-tune jobs, one folder each: `<dataDir>/jobs/<id>/` holding `spec.json`
 * (the request) and `events.jsonl`, an append-only log with one JobEvent per
 * line, fsynced before anyone hears of the event. A job's state is derived
 * from its log (job-state.ts); watchers replay the log, then follow it live.
 */
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { NotFound } from '../common/errors.js';
import type { FineTuneSpec, JobEvent, JobEventBody, JobFilter, JobInfo } from './engine-api.js';
import { applyJobEvent, initialJobInfo, isFinished, isTerminalEvent } from './job-state.js';
import { listEntries, makeTempDir, newId, publishDir, writeFileSynced, writeJsonSynced } from './store-files.js';

const SPEC_FILE = 'spec.json';
const EVENTS_FILE = 'events.jsonl';

/** Reason recorded for a job the process died under. */
export const INTERRUPTED_REASON = 'interrupted by restart';

interface JobRecord {
  info: JobInfo;
  /** Number of events in the log. */
  count: number;
  /** The log, while the job is live in this process; finished jobs replay from disk. */
  events: JobEvent[] | null;
  /** Open while the job is live. */
  file: FileHandle | null;
  /** Appends run one after another. */
  tail: Promise<unknown>;
  /** Woken on every append. */
  listeners: Set<() => void>;
  /** The log ends in a torn line: the next append starts a new line first. */
  torn?: boolean;
}

/** The jobs of one data directory. */
export class JobStore {
  private readonly jobs = new Map<string, JobRecord>();

  private constructor(
    /** `<dataDir>/jobs`. */
    readonly dir: string,
    private readonly log: Logger,
  ) {}

  /**
   * Lists the jobs on disk. A job that was running when the process died is
   * failed with {@link INTERRUPTED_REASON}; queued jobs stay queued.
   */
  static async open(dir: string, log: Logger): Promise<JobStore> {
    const store = new JobStore(dir, log);
    for (const id of await listEntries(dir)) {
      try {
        const { spec, createdAtMs } = JSON.parse(await readFile(join(dir, id, SPEC_FILE), 'utf8')) as {
          spec: FineTuneSpec;
          createdAtMs: number;
        };
        const info = initialJobInfo(id, spec, createdAtMs);
        const { events, torn } = await store.readLog(id);
        for (const e of events) applyJobEvent(info, e);
        store.jobs.set(id, { info, count: events.length, events: isFinished(info) ? null : events, file: null, tail: Promise.resolve(), listeners: new Set(), torn });
        if (info.state === 'running') {
          log.warn({ jobId: id }, 'fine-tune job was running when the process stopped: marking it failed');
          await store.append(id, { type: 'failed', reason: INTERRUPTED_REASON });
        }
      } catch (err) {
        log.warn({ jobId: id, err }, 'skipping unreadable fine-tune job');
      }
    }
    return store;
  }

  /** Persists a new job with its first event (`queued` at `position`). */
  async create(spec: FineTuneSpec, position: number): Promise<JobInfo> {
    const id = newId('ft');
    const createdAtMs = Date.now();
    const tmp = await makeTempDir(this.dir);
    await writeJsonSynced(join(tmp, SPEC_FILE), { id, spec, createdAtMs });
    const first: JobEvent = { jobId: id, sequence: 0, timeMs: createdAtMs, type: 'queued', position };
    await writeFileSynced(join(tmp, EVENTS_FILE), JSON.stringify(first) + '\n');
    await publishDir(tmp, join(this.dir, id), this.dir);
    const info = initialJobInfo(id, spec, createdAtMs);
    applyJobEvent(info, first);
    this.jobs.set(id, { info, count: 1, events: [first], file: null, tail: Promise.resolve(), listeners: new Set() });
    return { ...info };
  }

  /** Appends an event (durably), updates the state and wakes the watchers. */
  append(jobId: string, body: JobEventBody): Promise<JobEvent> {
    const rec = this.record(jobId);
    const run = rec.tail.then(async () => {
      const event = { jobId, sequence: rec.count, timeMs: Date.now(), ...body } as JobEvent;
      rec.file ??= await open(join(this.dir, jobId, EVENTS_FILE), 'a');
      await rec.file.write(`${rec.torn ? '\n' : ''}${JSON.stringify(event)}\n`);
      rec.torn = false;
      await rec.file.datasync();
      rec.count++;
      rec.events?.push(event);
      applyJobEvent(rec.info, event);
      if (isTerminalEvent(event)) {
        await rec.file.close();
        rec.file = null;
        rec.events = null;
      }
      for (const wake of rec.listeners) wake();
      return event;
    });
    rec.tail = run.catch(() => undefined);
    return run;
  }

  /** @throws NotFound naming `job_id`. */
  get(jobId: string): JobInfo {
    return { ...this.record(jobId).info };
  }

  /** Newest first, filtered. */
  list(filter: JobFilter): JobInfo[] {
    return [...this.jobs.values()]
      .map((r) => r.info)
      .filter((j) => (filter.state === undefined || j.state === filter.state) && (filter.adapter === undefined || j.spec.adapter === filter.adapter))
      .sort((a, b) => b.createdAtMs - a.createdAtMs || (a.id < b.id ? 1 : -1))
      .slice(0, filter.limit)
      .map((j) => ({ ...j }));
  }

  /** Jobs still waiting to run, oldest first. */
  queued(): JobInfo[] {
    return this.list({ state: 'queued', limit: Number.MAX_SAFE_INTEGER }).reverse();
  }

  /** Queued or running jobs. */
  unfinished(): JobInfo[] {
    return [...this.jobs.values()].map((r) => ({ ...r.info })).filter((j) => !isFinished(j));
  }

  /**
   * The job's events from `fromSequence` on: the history first, then live ones
   * as they are appended. Ends after the terminal event, or when `signal` aborts.
   */
  async *watch(jobId: string, fromSequence: number, signal: AbortSignal): AsyncGenerator<JobEvent> {
    const rec = this.record(jobId);
    let wake: () => void = () => undefined;
    let changed = new Promise<void>((resolve) => (wake = resolve));
    const listener = (): void => wake();
    const onAbort = (): void => wake();
    rec.listeners.add(listener);
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      let next = Math.max(0, fromSequence);
      // Live jobs hand out their in-memory log; finished ones are read back.
      const events = rec.events ?? (await this.readLog(jobId)).events.slice(0, rec.count);
      for (;;) {
        while (next < events.length && next < rec.count) {
          if (signal.aborted) return;
          const event = events[next++];
          yield event;
          if (isTerminalEvent(event)) return;
        }
        if (signal.aborted || (isFinished(rec.info) && next >= rec.count)) return;
        await changed;
        changed = new Promise<void>((resolve) => (wake = resolve));
      }
    } finally {
      rec.listeners.delete(listener);
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** Waits for pending appends and closes open logs. */
  async close(): Promise<void> {
    for (const rec of this.jobs.values()) {
      await rec.tail;
      await rec.file?.close();
      rec.file = null;
    }
  }

  private record(jobId: string): JobRecord {
    const rec = this.jobs.get(jobId);
    if (!rec) throw new NotFound(`\`job_id\` ${JSON.stringify(jobId)}: no such fine-tune job`);
    return rec;
  }

  /**
   * Reads a log. A line that does not parse is a torn append (the process died
   * mid-write, before the event counted): it is skipped, and the events after
   * it, appended after a restart, still number on from the last good one.
   */
  private async readLog(jobId: string): Promise<{ events: JobEvent[]; torn: boolean }> {
    const text = await readFile(join(this.dir, jobId, EVENTS_FILE), 'utf8');
    const events: JobEvent[] = [];
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      try {
        events.push(JSON.parse(line) as JobEvent);
      } catch {
        this.log.warn({ jobId }, 'skipping a torn line of a job log');
      }
    }
    return { events, torn: text.length > 0 && !text.endsWith('\n') };
  }
}
