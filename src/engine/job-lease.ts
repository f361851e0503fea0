/**
 * Who runs a fine-tune job: the holder of its lease, a file in the job's
 * folder of the shared store. Replicas sharing a data directory each run
 * only the jobs whose lease they hold, so a job is trained (and resumed
 * after a crash) by exactly one replica at a time.
 *
 * The store may be a network volume (NFS-like): rename over a file is
 * atomic, and so is creating a file that must not exist (link(2) of a
 * finished temporary file, which NFS performs atomically like O_EXCL), but
 * advisory locks may not work and another host's writes show up late. So a
 * lease is a sequence of generation files, `lease-<n>.json`, each holding
 * {@link LeaseRecord} (holder, expiry). The highest generation is the lease:
 *
 * - taking a free job, or one whose lease expired (its holder was killed or
 *   cut off; at once when the holder was a process of this host that is
 *   gone), is creating generation n+1 with link(): of replicas racing for
 *   it exactly one succeeds, the others get EEXIST and leave the job alone;
 * - the holder renews by renaming a new record over its own generation,
 *   every `renewMs`, only while that generation is still the highest and
 *   its previous expiry has not passed by its own clock: a holder that was
 *   stalled past its expiry never renews, it stops (its successor may be
 *   running already);
 * - the holder releases by writing an expiry of 0 (the next replica takes
 *   the job at once, as after a drain).
 *
 * Safety rests on clocks: a holder acts only before `expiresAtMs - marginMs`
 * of its own clock, another replica takes over only after `expiresAtMs` of
 * its clock, so hosts' clocks must agree within the margin (NTP does).
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { link, open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { HOST, isGoneHere } from '../common/atomic-write.js';

/** What a lease generation file holds. */
export interface LeaseRecord {
  /** The replica holding it ({@link newHolderId}). */
  holder: string;
  /** Epoch milliseconds after which another replica may take the job. 0 = released. */
  expiresAtMs: number;
}

/** Lease timing, in milliseconds. */
export interface LeaseTiming {
  /** How long a lease lasts past its last renewal. */
  ttlMs: number;
  /** How often the holder renews (well under ttlMs). */
  renewMs: number;
}

/** Default lease lifetime: a killed holder's job is taken over within about this long. */
export const DEFAULT_LEASE_TTL_MS = 10_000;
/** Default renewal period. */
export const DEFAULT_LEASE_RENEW_MS = 2_000;

const LEASE_FILE = /^lease-(\d+)\.json$/;


/** A replica's holder id: host, pid and random, unique per engine. */
export function newHolderId(): string {
  return `${HOST}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/**
 * True when `holder` was a process of this host that is gone: it holds
 * nothing, so its leases are free at once rather than at their expiry (a
 * restarted server resumes its jobs without waiting out the lease). A
 * holder with this process's pid but another id was an earlier process
 * whose pid this one reuses (pid 1 in a restarted container).
 */
function deadHereHolder(holder: string, self?: string): boolean {
  const m = /^(.+)-(\d+)-[0-9a-f]{8}$/.exec(holder);
  return m !== null && holder !== self && isGoneHere(m[1], Number(m[2]));
}

/** The lease of the job in `jobDir` as it stands: highest generation and its record (undefined when none, or unreadable). */
export function readLease(jobDir: string): { generation: number; record: LeaseRecord } | undefined {
  let names: string[];
  try {
    names = readdirSync(jobDir);
  } catch {
    return undefined;
  }
  let generation = 0;
  for (const n of names) {
    const m = LEASE_FILE.exec(n);
    if (m) generation = Math.max(generation, Number(m[1]));
  }
  if (generation === 0) return undefined;
  try {
    const record = JSON.parse(readFileSync(join(jobDir, `lease-${generation}.json`), 'utf8')) as LeaseRecord;
    // A record that does not parse as one (written by hand?) holds nothing.
    if (typeof record.holder !== 'string' || !Number.isFinite(record.expiresAtMs)) return { generation, record: { holder: '?', expiresAtMs: 0 } };
    return { generation, record };
  } catch {
    // Being replaced (rename is atomic, but it may vanish between list and read): treat as held for now.
    return { generation, record: { holder: '?', expiresAtMs: Date.now() + 1000 } };
  }
}

/** True when nobody holds the job now (no lease, released, expired, or held by a dead process of this host). */
export function leaseIsFree(jobDir: string, now = Date.now()): boolean {
  const lease = readLease(jobDir);
  return lease === undefined || lease.record.expiresAtMs <= now || deadHereHolder(lease.record.holder);
}

/** True for the name of a lease generation file (a finished job's are removed with its checkpoint). */
export function isLeaseFile(name: string): boolean {
  return LEASE_FILE.test(name);
}

/** A held lease as plain data (it crosses to a job's worker thread): enough to check it is still held. */
export interface LeaseRef {
  jobDir: string;
  holder: string;
  generation: number;
  /** The margin (the renewal period) kept before the expiry, in milliseconds. */
  renewMs: number;
}

/**
 * True while the lease `ref` describes is still the job's lease and more
 * than one renewal period from its expiry, read from disk now (so it works
 * in a thread that does not hold the JobLease).
 */
export function leaseStillHeld(ref: LeaseRef): boolean {
  const current = readLease(ref.jobDir);
  return current?.generation === ref.generation && current.record.holder === ref.holder && Date.now() < current.record.expiresAtMs - ref.renewMs;
}

/** A lease this replica holds on one job. */
export class JobLease {
  private timer: NodeJS.Timeout | null = null;
  private lost = false;
  private renewing: Promise<void> = Promise.resolve();

  private constructor(
    readonly jobDir: string,
    readonly holder: string,
    readonly generation: number,
    private expiresAtMs: number,
    private readonly timing: LeaseTiming,
    private readonly onLost: () => void,
    /** Taken from a holder whose lease expired (rather than one that released it, or none). */
    readonly tookOver: boolean,
  ) {}

  /**
   * Takes the job's lease when it is free or expired, and renews it from then
   * on; resolves undefined when another replica holds it or wins the race.
   * `onLost` is called (once) when a renewal finds the lease gone to another.
   */
  static async acquire(jobDir: string, holder: string, timing: LeaseTiming, onLost: () => void): Promise<JobLease | undefined> {
    const now = Date.now();
    const current = readLease(jobDir);
    if (current && current.record.expiresAtMs > now && !deadHereHolder(current.record.holder, holder)) return undefined;
    const generation = (current?.generation ?? 0) + 1;
    const expiresAtMs = now + timing.ttlMs;
    const tmp = await writeTemp(jobDir, { holder, expiresAtMs });
    try {
      // link() fails with EEXIST if another replica created this generation first.
      await link(tmp, join(jobDir, `lease-${generation}.json`));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' || code === 'ENOENT') return undefined;
      throw err;
    } finally {
      await unlink(tmp).catch(() => undefined);
    }
    if (current) await unlink(join(jobDir, `lease-${current.generation}.json`)).catch(() => undefined);
    const lease = new JobLease(jobDir, holder, generation, expiresAtMs, timing, onLost, current !== undefined && current.record.expiresAtMs > 0);
    lease.timer = setInterval(() => void lease.renew(), timing.renewMs);
    lease.timer.unref();
    return lease;
  }

  /**
   * True while this replica may act for the job: the lease was not lost and
   * its expiry, less a margin of one renewal period, has not passed.
   */
  get valid(): boolean {
    return !this.lost && Date.now() < this.expiresAtMs - this.timing.renewMs;
  }

  /** This lease as plain data, for {@link leaseStillHeld} in another thread. */
  get ref(): LeaseRef {
    return { jobDir: this.jobDir, holder: this.holder, generation: this.generation, renewMs: this.timing.renewMs };
  }

  /** Renews now (the timer does it by itself); marks the lease lost when it cannot. */
  renew(): Promise<void> {
    this.renewing = this.renewing.then(async () => {
      if (this.lost || this.timer === null) return;
      const current = readLease(this.jobDir);
      // Stalled past the expiry, or a successor exists: the job is no longer ours.
      if (Date.now() >= this.expiresAtMs || current?.generation !== this.generation || current.record.holder !== this.holder) {
        return this.lose();
      }
      const expiresAtMs = Date.now() + this.timing.ttlMs;
      // A write that fails (a volume hiccup) is tried again at the next tick; the lease is lost only once it expires.
      if (await this.write(expiresAtMs).then(() => true, () => false)) this.expiresAtMs = expiresAtMs;
    }).catch(() => this.lose());
    return this.renewing;
  }

  /**
   * Stops renewing and frees the job for any replica at once (expiry 0);
   * with `finished` (the job has ended: nothing is left to hold) the lease
   * file is removed instead. Idempotent.
   */
  async release(finished = false): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.renewing;
    if (this.lost) return;
    this.lost = true;
    const current = readLease(this.jobDir);
    if (current?.generation !== this.generation || current.record.holder !== this.holder) return;
    if (finished) await unlink(join(this.jobDir, `lease-${this.generation}.json`)).catch(() => undefined);
    else await this.write(0).catch(() => undefined);
  }

  private lose(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.lost) return;
    this.lost = true;
    this.onLost();
  }

  private async write(expiresAtMs: number): Promise<void> {
    const tmp = await writeTemp(this.jobDir, { holder: this.holder, expiresAtMs });
    await rename(tmp, join(this.jobDir, `lease-${this.generation}.json`));
  }
}

/** Writes `record` to a fresh hidden file in `dir` (fsynced) and returns its path. */
async function writeTemp(dir: string, record: LeaseRecord): Promise<string> {
  const path = join(dir, `.lease-${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(path, 'wx');
  try {
    await fh.writeFile(JSON.stringify(record) + '\n');
    await fh.sync();
  } finally {
    await fh.close();
  }
  return path;
}
