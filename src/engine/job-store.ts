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
 * ({@link MAX_STARTS_WITHOUT_CHECKPOINT}, see {@link JobStore.failIfLooping}):
 * it is failed with {@link INTERRUPTED_REASON}, so that a job which crashes
 * the process cannot crash it forever.
 *
 * Replicas share the folder. Only the holder of a job's lease (job-lease.ts)
 * appends to its log: the runner {@link JobStore.adopt}s a job once it holds
 * its lease (the log is re-read from disk, so sequence numbers go on from
 * the last event any replica wrote) and {@link JobStore.disown}s it when it
 * lets go. Every replica sees the others' jobs and events through
 * {@link JobStore.refresh} (called every `--store-poll-ms`: new job folders
 * are read, the logs of unfinished jobs read on from where they were) and
 * at once on a miss (a job id this replica has not seen yet is looked up
 * on disk), and wakes its watchers with what it reads.
 */
import { constants, readdirSync, writeSync } from 'node:fs';
import { open, readdir, rm, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { diskError } from '../common/atomic-write.js';
import { NotFound, Unavailable } from '../common/errors.js';
import type { FineTuneSpec, JobEvent, JobEventBody, JobFilter, JobInfo } from './engine-api.js';
import { CHECKPOINT_FILE, removeJobCheckpoint } from './job-checkpoint.js';
import { isLeaseFile, leaseIsFree } from './job-lease.js';
import { readLogFrom } from './job-log-file.js';
import { applyJobEvent, initialJobInfo, isFinished, isTerminalEvent } from './job-state.js';
import { listEntries, makeTempDir, newId, publishDir, writeFileSynced, writeJsonSynced } from './store-files.js';
import { readFileNoFollow, readTextNoFollowSync } from './store-path.js';

/** Appends to a job log, never through a symbolic link (it could lead out of the data directory). */
const APPEND_NO_FOLLOW = constants.O_WRONLY | constants.O_APPEND | constants.O_NOFOLLOW;

const JOB_DIR = /^ft-[0-9a-z]+$/;

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
  /** Bytes of the log read (or written) so far: another replica's appends are read from here on. */
  offset: number;
  /** This replica holds the job's lease and writes its log ({@link JobStore.adopt}). */
  local: boolean;
}

/** The jobs of one data directory. */
export class JobStore {
  private readonly jobs = new Map<string, JobRecord>();
  /** Job folders whose spec.json or log did not read (reported once, not read again by refresh). */
  private readonly unreadable = new Set<string>();

  private constructor(
    /** `<dataDir>/jobs`. */
    readonly dir: string,
    private readonly log: Logger,
  ) {}

  /**
   * Lists the jobs on disk; a job whose spec.json or log does not read is
   * logged (naming the file) and skipped. Queued jobs stay queued, and a job
   * that was running when the process died stays running (see
   * {@link interrupted}), for the runner to resume (or fail, see {@link failIfLooping}).
   */
  static async open(dir: string, log: Logger): Promise<JobStore> {
    const store = new JobStore(dir, log);
    for (const id of await listEntries(dir)) {
      const rec = store.load(id);
      if (!rec) continue;
      // An unfinished job's folder may hold another replica's checkpoint write in progress: its next holder cleans it (adopt).
      if (isFinished(rec.info)) await removeLeftovers(join(dir, id), true);
      if (rec.info.state === 'running') log.info({ jobId: id, step: rec.info.step }, 'fine-tune job was running when the process stopped: it will resume');
    }
    return store;
  }

  /**
   * Reads job `id` from its folder (spec.json and the whole log) into the
   * store; logs (naming the file) and returns undefined when either does not read.
   */
  private load(id: string): JobRecord | undefined {
    const specFile = join(this.dir, id, SPEC_FILE);
    let spec: FineTuneSpec;
    let createdAtMs: number;
    try {
      ({ spec, createdAtMs } = JSON.parse(readTextNoFollowSync(specFile)) as { spec: FineTuneSpec; createdAtMs: number });
      if (typeof spec !== 'object' || spec === null || typeof spec.adapter !== 'string' || !Number.isFinite(createdAtMs)) {
        throw new Error('not a fine-tune job spec');
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      this.log.warn({ jobId: id, file: specFile, err }, 'skipping fine-tune job with an unreadable spec.json');
      this.unreadable.add(id);
      return undefined;
    }
    try {
      const info = initialJobInfo(id, spec, createdAtMs);
      // A log nobody holds is read to its end; one a replica writes, to its last complete line.
      const { events, torn, offset } = this.readLog(id, leaseIsFree(join(this.dir, id)) ? 'parse' : 'keep');
      for (const e of events) applyJobEvent(info, e);
      const rec: JobRecord = { info, count: events.length, events: isFinished(info) ? null : events, file: null, tail: Promise.resolve(), listeners: new Set(), torn, offset, local: false };
      this.jobs.set(id, rec);
      return rec;
    } catch (err) {
      this.log.warn({ jobId: id, file: join(this.dir, id, EVENTS_FILE), err }, 'skipping fine-tune job with an unreadable event log');
      this.unreadable.add(id);
      return undefined;
    }
  }

  /**
   * Catches up with what other replicas wrote: jobs created since (new
   * folders), and the events appended to the logs of unfinished jobs this
   * replica does not hold; wakes their watchers. Cheap when nothing changed:
   * one listing and one stat per unfinished job.
   */
  refresh(): void {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return;
    }
    for (const id of names) if (JOB_DIR.test(id) && !this.jobs.has(id) && !this.unreadable.has(id)) this.load(id);
    for (const [id, rec] of this.jobs) {
      if (rec.local || rec.events === null) continue;
      this.readOn(id, rec);
    }
  }

  /** Reads the events other replicas appended to `rec`'s log since the last read, and wakes its watchers. */
  private readOn(id: string, rec: JobRecord): void {
    let read;
    try {
      read = readLogFrom(join(this.dir, id, EVENTS_FILE), rec.offset, 'keep');
    } catch {
      return; // removed, or unreadable for now: the next refresh tries again
    }
    if (read.offset === rec.offset) return;
    rec.offset = read.offset;
    for (const event of read.events) {
      rec.count++;
      rec.events?.push(event);
      applyJobEvent(rec.info, event);
      if (isTerminalEvent(event)) rec.events = null;
    }
    if (read.events.length > 0) for (const wake of rec.listeners) wake();
  }

  /**
   * This replica now holds the job's lease: the log is read again from disk
   * (whoever held it before may have appended since this replica last
   * looked), and from now on this replica's appends number on from its last
   * event. A checkpoint's temporary file the previous holder left is removed.
   */
  async adopt(jobId: string): Promise<JobInfo> {
    const rec = this.record(jobId);
    await rec.tail;
    const { events, torn, offset } = this.readLog(jobId, 'parse');
    const info = initialJobInfo(jobId, rec.info.spec, rec.info.createdAtMs);
    for (const e of events) applyJobEvent(info, e);
    Object.assign(rec.info, info);
    // Watchers hold the array: it is refilled in place, never replaced.
    const held = rec.events ?? [];
    held.length = 0;
    held.push(...events);
    rec.events = isFinished(info) ? null : held;
    const woken = events.length > rec.count;
    rec.count = events.length;
    rec.torn = torn;
    rec.offset = offset;
    rec.local = true;
    await removeLeftovers(join(this.dir, jobId), false);
    if (woken) for (const wake of rec.listeners) wake();
    return { ...rec.info };
  }

  /** This replica no longer holds the job's lease: its log is closed, and read from disk as others append. */
  async disown(jobId: string): Promise<void> {
    const rec = this.jobs.get(jobId);
    if (!rec) return;
    await rec.tail;
    await rec.file?.close();
    rec.file = null;
    rec.local = false;
  }

  /**
   * Fails a running job that started {@link MAX_STARTS_WITHOUT_CHECKPOINT}
   * times since its last checkpoint (or ever) with {@link INTERRUPTED_REASON};
   * true when it did. The runner asks before it resumes a job it adopted.
   */
  async failIfLooping(jobId: string): Promise<boolean> {
    const rec = this.record(jobId);
    const starts = startsSinceCheckpoint(rec.events ?? []);
    if (rec.info.state !== 'running' || starts < MAX_STARTS_WITHOUT_CHECKPOINT) return false;
    this.log.warn({ jobId, starts }, 'fine-tune job keeps dying before its next checkpoint: marking it failed');
    await this.append(jobId, { type: 'failed', reason: `${INTERRUPTED_REASON} ${starts} times without reaching a new checkpoint` });
    return true;
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
    const offset = Buffer.byteLength(JSON.stringify(first) + '\n');
    this.jobs.set(id, { info, count: 1, events: [first], file: null, tail: Promise.resolve(), listeners: new Set(), offset, local: false });
    return { ...info };
  }

  /**
   * Appends an event (durably), updates the state and wakes the watchers.
   * `mayWrite` (the lease's validity) is asked right before the write: false
   * rejects with Unavailable and writes nothing.
   */
  append(jobId: string, body: JobEventBody, mayWrite?: () => boolean): Promise<JobEvent> {
    const rec = this.record(jobId);
    const run = rec.tail.then(async () => {
      const event = { jobId, sequence: rec.count, timeMs: Date.now(), ...body } as JobEvent;
      try {
        rec.file ??= await open(join(this.dir, jobId, EVENTS_FILE), APPEND_NO_FOLLOW);
      } catch (err) {
        throw diskError(err, dirname(this.dir));
      }
      const line = `${rec.torn ? '\n' : ''}${JSON.stringify(event)}\n`;
      // The lease is checked right before the bytes go out, in the same synchronous step: an append queued
      // behind a slow fsync while the lease ran out must not land after a successor read the log.
      if (mayWrite && !mayWrite()) throw new Unavailable(`fine-tune job ${JSON.stringify(jobId)}: its lease was lost; the event is not written`);
      try {
        writeSync(rec.file.fd, line);
        rec.torn = false;
        rec.offset += Buffer.byteLength(line);
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
        rec.local = false;
        // After the event: a crash in between leaves a checkpoint (and a lease) that the next open removes.
        await removeJobCheckpoint(join(this.dir, jobId, CHECKPOINT_FILE)).catch((err: unknown) =>
          this.log.warn({ jobId, err }, 'could not remove the checkpoint of a finished fine-tune job'),
        );
        await removeLeftovers(join(this.dir, jobId), true);
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

  /** Jobs in state 'running' (running elsewhere, or left by a process that stopped), oldest first. */
  interrupted(): JobInfo[] {
    return this.list({ state: 'running', limit: Number.MAX_SAFE_INTEGER }).reverse();
  }

  /** The job's folder (where its lease lives, job-lease.ts). */
  jobDir(jobId: string): string {
    this.record(jobId);
    return join(this.dir, jobId);
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
      const events = rec.events ?? this.readLog(jobId, 'parse').events.slice(0, rec.count);
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
    const events = rec.events ?? this.readLog(jobId, 'parse').events;
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

  /** The job's record; one this replica has not seen yet (created by another a moment ago) is read from disk. */
  private record(jobId: string): JobRecord {
    const rec = this.jobs.get(jobId) ?? (JOB_DIR.test(jobId) && !this.unreadable.has(jobId) ? this.load(jobId) : undefined);
    if (!rec) throw new NotFound(`\`job_id\` ${JSON.stringify(jobId)}: no such fine-tune job`);
    return rec;
  }

  /**
   * Reads a log whole. A line that does not parse is a torn append (the
   * process died mid-write, before the event counted): it is skipped, and
   * the events after it, appended after a restart, still number on from the
   * last good one.
   */
  private readLog(jobId: string, tail: 'keep' | 'parse'): { events: JobEvent[]; torn: boolean; offset: number } {
    const file = join(this.dir, jobId, EVENTS_FILE);
    const { events, torn, offset, badLines } = readLogFrom(file, 0, tail);
    for (const line of badLines) this.log.warn({ jobId, file, line }, 'skipping a torn line of a job log');
    return { events, torn, offset };
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
 * checkpoint and lease of a job that has ended.
 */
async function removeLeftovers(jobDir: string, finished: boolean): Promise<void> {
  for (const name of await readdir(jobDir)) {
    // A lease's temporary file may be a renewal in progress (job-lease.ts): it goes only with a finished job.
    const leaseTemp = name.startsWith('.lease-');
    if ((name.startsWith('.') && name.endsWith('.tmp') && (finished || !leaseTemp)) || (finished && (name === CHECKPOINT_FILE || isLeaseFile(name)))) {
      await rm(join(jobDir, name), { force: true, recursive: true });
    }
  }
}
