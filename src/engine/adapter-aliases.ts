/**
 * Adapter aliases: `name@prod` -> `name@7`, one small file per alias in the
 * shared store, `<dataDir>/aliases/<name>/<alias>.json` ({@link AliasRecord}).
 * Moving an alias (promotion, rollback) writes the new record to a hidden
 * temporary file and renames it over the old one: atomic on local and
 * NFS-like volumes, so every reader sees the old target or the new one.
 *
 * Resolution reads the file each time (one small synchronous read, like the
 * adapter store's listings): no cache to go stale, so a move is visible on
 * every replica sharing the volume as soon as the rename is (at once
 * locally; within the volume's attribute cache on NFS). A request binds to
 * the version when it resolves the alias, so requests in flight finish on
 * the version they started with.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';

/** An alias name: starts with a letter (so it is never a version number), then up to 31 of [A-Za-z0-9_-]. */
export const ALIAS_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,31}$/;

/** What one alias file holds. */
export interface AliasRecord {
  /** The version the alias points to. */
  version: number;
  /** Epoch milliseconds of the last move. */
  updatedAtMs: number;
}

/** One alias of an adapter, as ListAdapters shows it. */
export interface AdapterAlias extends AliasRecord {
  alias: string;
}

/** The aliases of every adapter under `<dataDir>/aliases`. */
export class AdapterAliases {
  constructor(
    /** `<dataDir>/aliases`. */
    readonly dir: string,
  ) {}

  /** The version `name@alias` points to now, or undefined when there is no such alias. */
  resolve(name: string, alias: string): number | undefined {
    return this.read(name, alias)?.version;
  }

  /** The aliases of `name`, sorted by alias. */
  list(name: string): AdapterAlias[] {
    let files: string[];
    try {
      files = readdirSync(join(this.dir, name));
    } catch {
      return [];
    }
    const out: AdapterAlias[] = [];
    for (const f of files.sort()) {
      if (!f.endsWith('.json') || f.startsWith('.')) continue;
      const alias = f.slice(0, -'.json'.length);
      const record = this.read(name, alias);
      if (record) out.push({ alias, ...record });
    }
    return out;
  }

  /** Points `name@alias` at `version` (creating or moving it) in one atomic rename. */
  async set(name: string, alias: string, version: number): Promise<AliasRecord> {
    const dir = join(this.dir, name);
    await mkdir(dir, { recursive: true });
    const record: AliasRecord = { version, updatedAtMs: Date.now() };
    const tmp = join(dir, `.alias-${randomBytes(6).toString('hex')}.tmp`);
    const fh = await open(tmp, 'wx');
    try {
      await fh.writeFile(JSON.stringify(record) + '\n');
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await rename(tmp, join(dir, `${alias}.json`));
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    return record;
  }

  /** Removes every alias of `name` that points to `version` (the version is being deleted). */
  async dropVersion(name: string, version: number): Promise<void> {
    for (const a of this.list(name)) if (a.version === version) await unlink(join(this.dir, name, `${a.alias}.json`)).catch(() => undefined);
  }

  private read(name: string, alias: string): AliasRecord | undefined {
    try {
      const r = JSON.parse(readFileSync(join(this.dir, name, `${alias}.json`), 'utf8')) as AliasRecord;
      return Number.isInteger(r.version) && r.version > 0 ? { version: r.version, updatedAtMs: Number(r.updatedAtMs) || 0 } : undefined;
    } catch {
      return undefined;
    }
  }
}
