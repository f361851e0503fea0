/**
 * Fine-tune jobs, one folder each: `<dataDir>/jobs/<id>/` holding `spec.json`
 * (the request), `events.jsonl`, an append-only log with one JobEvent per
 * line, fsynced before anyone hears of the event, and, while the job runs,
 * `checkpoint.safetensors` (job-checkpoint.ts), deleted when the job ends.
 * A job's state is derived from its log (job-state.ts); watchers replay the
 * log, then follow it live.
 *
 * After a restart a job that was running is still running: the runner
 * resumes it first, from its checkpoint (or from step 0 when it has none).
 * Only a job that keeps dying before its next checkpoint is given up on
 * ({@link MAX_STARTS_WITHOUT_CHECKPOINT}): it is failed with
 * {@link INTERRUPTED_REASON}, so that a job which crashes the process cannot
 * crash it forever.
 */
import { constants } from 'node:fs';
import { open, readdir, rm, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { diskError } from '../common/atomic-write.js';
import { NotFound } from '../common/errors.js';
import type { FineTuneSpec, JobEvent, JobEventBody, JobFilter, JobInfo } from './engine-api.js';
import { CHECKPOINT_FILE, removeJobCheckpoint } from './job-checkpoint.js';
import { applyJobEvent, initialJobInfo, isFinished, isTerminalEvent } from './job-state.js';
import { listEntries, makeTempDir, newId, publishDir, writeFileSynced, writeJsonSynced } from './store-files.js';
import { readFileNoFollow } from './store-path.js';

/** Appends to a job log, never through a symbolic link (it could lead out of the data directory). */
const APPEND_NO_FOLLOW = constants.O_WRONLY | constants.O_APPEND | constants.O_NOFOLLOW;

const SPEC_FILE = 'spec.json';
const EVENTS_FILE = 'events.jsonl';

/** Start of the reason recorded for a job given up on after restarts. */
export const INTERRUPTED_REASON = 'interrupted by restart';
/** A running job started this many times since its last checkpoint (or ever) is failed at the next restart. */
export const MAX_STARTS_WITHOUT_CHECKPOINT = 3;

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
   * Lists the jobs on disk; a job whose spec.json or log does not read is
   * logged (naming the file) and skipped. Queued jobs stay queued, and a job
   * that was running when the process died stays running (see
   * {@link interrupted}), unless it started {@link MAX_STARTS_WITHOUT_CHECKPOINT}
   * times without a checkpoint since: then it is failed.
   */
  static async open(dir: string, log: Logger): Promise<JobStore> {
    const store = new JobStore(dir, log);
    for (const id of await listEntries(dir)) {
      const specFile = join(dir, id, SPEC_FILE);
      let spec: FineTuneSpec;
      let createdAtMs: number;
      try {
        ({ spec, createdAtMs } = JSON.parse(await readFileNoFollow(specFile, 'utf8')) as { spec: FineTuneSpec; createdAtMs: number });
        if (typeof spec !== 'object' || spec === null || typeof spec.adapter !== 'string' || !Number.isFinite(createdAtMs)) {
          throw new Error('not a fine-tune job spec');
        }
      } catch (err) {
        log.warn({ jobId: id, file: specFile, err }, 'skipping fine-tune job with an unreadable spec.json');
        continue;
      }
      try {
        const info = initialJobInfo(id, spec, createdAtMs);
        const { events, torn } = await store.readLog(id);
        for (const e of events) applyJobEvent(info, e);
        store.jobs.set(id, { info, count: events.length, events: isFinished(info) ? null : events, file: null, tail: Promise.resolve(), listeners: new Set(), torn });
        await removeLeftovers(join(dir, id), isFinished(info));
        const starts = startsSinceCheckpoint(events);
        if (info.state === 'running' && starts >= MAX_STARTS_WITHOUT_CHECKPOINT) {
          log.warn({ jobId: id, starts }, 'fine-tune job keeps dying before its next checkpoint: marking it failed');
          await store.append(id, { type: 'failed', reason: `${INTERRUPTED_REASON} ${starts} times without reaching a new checkpoint` });
        } else if (info.state === 'running') {
          log.info({ jobId: id, step: info.step }, 'fine-tune job was running when the process stopped: it will resume');
        }
      } catch (err) {
        log.warn({ jobId: id, file: join(dir, id, EVENTS_FILE), err }, 'skipping fine-tune job with an unreadable event log');
      }
    }
    return store;
  }

  /** Persists a new job with its first event (`queued` at `position`). */
  async create(spec: FineTuneSpec, position: number): Promise<JobInfo> {
    const id = newId('ft');
    const createdAtMs = Date.now();
    const first: JobEvent = { jobId: id, sequence: 0, timeMs: createdAtMs, type: 'queued', position };
    let tmp: string | undefined;
    try {
      tmp = await makeTempDir(this.dir);
      await writeJsonSynced(join(tmp, SPEC_FILE), { id, spec, createdAtMs });
      await writeFileSynced(join(tmp, EVENTS_FILE), JSON.stringify(first) + '\n');
      await publishDir(tmp, join(this.dir, id), this.dir);
    } catch (err) {
      if (tmp !== undefined) await rm(tmp, { recursive: true, force: true });
      throw diskError(err, dirname(this.dir));
    }
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
      try {
        rec.file ??= await open(join(this.dir, jobId, EVENTS_FILE), APPEND_NO_FOLLOW);
        await rec.file.write(`${rec.torn ? '\n' : ''}${JSON.stringify(event)}\n`);
        rec.torn = false;
        await rec.file.datasync();
      } catch (err) {
        // Part of the line may be on disk (a full disk): the next append starts a new line, and readers skip the torn one.
        rec.torn = true;
        throw diskError(err, dirname(this.dir));
      }
      rec.count++;
      rec.events?.push(event);
      applyJobEvent(rec.info, event);
      if (isTerminalEvent(event)) {
        await rec.file.close();
        rec.file = null;
        rec.events = null;
        // After the event: a crash in between leaves a checkpoint that the next open removes.
        await removeJobCheckpoint(join(this.dir, jobId, CHECKPOINT_FILE)).catch((err: unknown) =>
          this.log.warn({ jobId, err }, 'could not remove the checkpoint of a finished fine-tune job'),
        );
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

  /** Jobs that were running when the process stopped (state 'running', not running here yet), oldest first. */
  interrupted(): JobInfo[] {
    return this.list({ state: 'running', limit: Number.MAX_SAFE_INTEGER }).reverse();
  }

  /** The file of the job's trainer checkpoint (job-checkpoint.ts), present or not. */
  checkpointPath(jobId: string): string {
    this.record(jobId);
    return join(this.dir, jobId, CHECKPOINT_FILE);
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

  /** The log as it stands, oldest first, without following it. NotFound if unknown. */
  async events(jobId: string): Promise<JobEvent[]> {
    const rec = this.record(jobId);
    // Live jobs hand out their in-memory log; finished ones are read back (as watch does).
    const events = rec.events ?? (await this.readLog(jobId)).events;
    return events.slice(0, rec.count);
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
    const file = join(this.dir, jobId, EVENTS_FILE);
    const text = await readFileNoFollow(file, 'utf8');
    const events: JobEvent[] = [];
    text.split('\n').forEach((line, i) => {
      if (line.trim() === '') return;
      try {
        const event = JSON.parse(line) as JobEvent;
        if (typeof event !== 'object' || event === null || typeof event.type !== 'string') throw new Error('not an event');
        events.push(event);
      } catch {
        this.log.warn({ jobId, file, line: i + 1 }, 'skipping a torn line of a job log');
      }
    });
    return { events, torn: text.length > 0 && !text.endsWith('\n') };
  }
}

/** Starts ('started' events) since the last checkpoint (or since the job was created). */
function startsSinceCheckpoint(events: readonly JobEvent[]): number {
  let starts = 0;
  for (const e of events) {
    if (e.type === 'started') starts++;
    else if (e.type === 'checkpoint') starts = 0;
  }
  return starts;
}

/**
 * Removes what a kill can leave in a job's folder: a checkpoint's temporary
 * file (writeFileAtomic names them `.tmp-<host>-<pid>-<hex>.tmp`), and the
 * checkpoint of a job that has ended.
 */
async function removeLeftovers(jobDir: string, finished: boolean): Promise<void> {
  for (const name of await readdir(jobDir)) {
    if ((name.startsWith('.') && name.endsWith('.tmp')) || (finished && name === CHECKPOINT_FILE)) {
      await rm(join(jobDir, name), { force: true, recursive: true });
    }
  }
}
