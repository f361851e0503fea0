/**
 * Uploaded JSONL datasets, one folder each: `<dataDir>/datasets/<id>/` holding
 * `data.jsonl` (the bytes as uploaded) and `meta.json` (a {@link DatasetInfo}).
 * An upload is validated line by line while it streams, written into a hidden
 * temporary folder (fsynced) and renamed into place only when every line
 * passed: a failed or cancelled upload leaves nothing behind, and a process
 * killed mid-upload leaves only the hidden folder, removed at the next open.
 * A dataset whose meta.json does not read is logged, naming the file, and skipped.
 * Nothing is read through a symbolic link (store-path.ts). A full disk
 * (ENOSPC, EDQUOT) fails the upload with RESOURCE_EXHAUSTED naming the data
 * directory, and leaves nothing behind either.
 *
 * Replicas share the folder: {@link DatasetStore.refresh} (every
 * `--store-poll-ms`) lists it again, so a dataset another replica stored
 * appears and one it deleted goes; and an id not known yet is looked up on
 * disk at once ({@link DatasetStore.get}), so a FineTune naming a dataset
 * uploaded to another replica a moment ago finds it.
 */
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { diskError } from '../common/atomic-write.js';
import { FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted } from '../common/errors.js';
import { isStoreName } from '../common/store-name.js';
import { readSftJsonl } from '../training/data/jsonl-reader.js';
import type { NumberedExample } from '../training/data/sft-example.js';
import type { DatasetFormat, DatasetInfo, DatasetUploadMeta } from './engine-api.js';
import { limitLabel } from './limit-label.js';
import { listEntries, makeTempDir, newId, publishDir, removeDir, writeJsonSynced } from './store-files.js';
import { assertRegularFile, openNoFollow, readFileNoFollow, readTextNoFollowSync } from './store-path.js';

const DATA_FILE = 'data.jsonl';

/** Path of dataset `id`'s JSONL under the datasets folder (the one place that knows the layout). */
export function datasetDataPath(datasetsDir: string, id: string): string {
  return join(datasetsDir, id, DATA_FILE);
}
const META_FILE = 'meta.json';
const DATASET_DIR = /^ds-[0-9a-z]+$/;
const FORMATS: readonly DatasetFormat[] = ['prompt_completion', 'chat', 'text'];

/** The datasets of one data directory, listed from disk at open. */
export class DatasetStore {
  private readonly datasets = new Map<string, DatasetInfo>();
  /** Ids whose meta.json did not read (reported once). */
  private readonly unreadable = new Set<string>();

  private constructor(
    /** `<dataDir>/datasets`. */
    readonly dir: string,
    private readonly log: Logger,
  ) {}

  /** Lists the datasets on disk; an entry whose meta.json is unreadable is logged and skipped. */
  static async open(dir: string, log: Logger): Promise<DatasetStore> {
    const store = new DatasetStore(dir, log);
    for (const id of await listEntries(dir)) store.load(id);
    return store;
  }

  /** Reads dataset `id`'s meta.json into the store (a small synchronous read); undefined when it does not read. */
  private load(id: string): DatasetInfo | undefined {
    const file = join(this.dir, id, META_FILE);
    try {
      const info = parseMeta(JSON.parse(readTextNoFollowSync(file)), id);
      assertRegularFile(datasetDataPath(this.dir, id));
      this.datasets.set(id, info);
      this.unreadable.delete(id);
      return info;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      if (!this.unreadable.has(id)) this.log.warn({ datasetId: id, file, err }, 'skipping dataset with an unreadable meta.json');
      this.unreadable.add(id);
      return undefined;
    }
  }

  /**
   * Lists the folder again: datasets other replicas stored since are read,
   * those they deleted are forgotten. Removes nothing (a hidden folder may
   * be another replica's upload in progress).
   */
  refresh(): void {
    let names: string[];
    try {
      names = readdirSync(this.dir).filter((n) => DATASET_DIR.test(n));
    } catch {
      return;
    }
    const present = new Set(names);
    for (const id of [...this.datasets.keys()]) if (!present.has(id)) this.datasets.delete(id);
    for (const id of names) if (!this.datasets.has(id) && !this.unreadable.has(id)) this.load(id);
  }

  /**
   * Stores an upload. Every line is validated as it arrives (InvalidArgument
   * naming the line), the whole file must hold at most `maxBytes` bytes
   * (ResourceExhausted naming the limit), at most `maxExamples` examples
   * (likewise) and lines must all have one format.
   * Nothing is stored if it throws, including when `signal` aborts.
   */
  async upload(
    meta: DatasetUploadMeta,
    chunks: AsyncIterable<Uint8Array>,
    signal: AbortSignal,
    maxBytes: number,
    maxExamples = Number.POSITIVE_INFINITY,
  ): Promise<DatasetInfo> {
    let tmp: string;
    try {
      tmp = await makeTempDir(this.dir);
    } catch (err) {
      throw diskError(err, dirname(this.dir));
    }
    try {
      const fh = await open(join(tmp, DATA_FILE), 'wx');
      const hash = createHash('sha256');
      let sizeBytes = 0;
      let numExamples = 0;
      let format: DatasetFormat | undefined = meta.format === 'auto' ? undefined : meta.format;
      try {
        // The reader pulls from this tee: every byte is counted, hashed and
        // written before it is parsed, so memory stays at one chunk.
        async function* tee(): AsyncGenerator<Uint8Array> {
          for await (const chunk of chunks) {
            if (signal.aborted) throw signal.reason;
            sizeBytes += chunk.length;
            if (sizeBytes > maxBytes) {
              throw new ResourceExhausted(`the dataset must be at most ${limitLabel('maxUploadBytes', maxBytes)} bytes, got more than that`);
            }
            hash.update(chunk);
            for (let done = 0; done < chunk.length; ) {
              done += (await fh.write(chunk, done, chunk.length - done)).bytesWritten;
            }
            yield chunk;
          }
        }
        for await (const { line, example } of readSftJsonl(tee())) {
          if (format === undefined) format = example.kind;
          else if (example.kind !== format) {
            throw new InvalidArgument(`line ${line}: expected a ${format} example, got ${example.kind}`);
          }
          if (++numExamples > maxExamples) {
            throw new ResourceExhausted(`the dataset must have at most ${limitLabel('maxDatasetExamples', maxExamples)} examples, got more than that (line ${line})`);
          }
        }
        if (signal.aborted) throw signal.reason;
        await fh.sync();
      } finally {
        await fh.close();
      }
      if (numExamples === 0 || format === undefined) throw new InvalidArgument('dataset has no examples');
      const info: DatasetInfo = {
        id: newId('ds'),
        name: meta.name,
        format,
        numExamples,
        sizeBytes,
        sha256: hash.digest('hex'),
        createdAtMs: Date.now(),
      };
      await writeJsonSynced(join(tmp, META_FILE), info);
      await publishDir(tmp, join(this.dir, info.id), this.dir);
      this.datasets.set(info.id, info);
      this.log.info({ datasetId: info.id, numExamples, sizeBytes, format }, 'dataset stored');
      return info;
    } catch (err) {
      await removeDir(tmp, this.dir).catch(() => undefined);
      throw diskError(err, dirname(this.dir));
    }
  }

  /** Newest first. */
  list(): DatasetInfo[] {
    return [...this.datasets.values()].sort((a, b) => b.createdAtMs - a.createdAtMs || (a.id < b.id ? 1 : -1));
  }

  /** @throws NotFound naming `field` (the request field that held the id). */
  get(id: string, field = 'dataset_id'): DatasetInfo {
    const info = this.datasets.get(id) ?? (isStoreName(id) && DATASET_DIR.test(id) ? this.load(id) : undefined);
    if (!info) throw new NotFound(`\`${field}\` ${JSON.stringify(id)}: no such dataset`);
    return info;
  }

  /** The examples of a stored dataset, with their line numbers. */
  read(id: string): AsyncGenerator<NumberedExample> {
    this.get(id);
    return readNoFollow(datasetDataPath(this.dir, id));
  }

  /** The bytes of a stored dataset as uploaded. NotFound if unknown. */
  async content(id: string): Promise<Uint8Array> {
    this.get(id);
    return readFileNoFollow(datasetDataPath(this.dir, id));
  }

  /**
   * Deletes a dataset. `usedBy` names a queued or running job that reads it,
   * if any: then the dataset stays (FailedPrecondition).
   */
  async delete(id: string, usedBy?: string): Promise<void> {
    this.get(id);
    if (usedBy !== undefined) {
      throw new FailedPrecondition(`dataset ${JSON.stringify(id)} is used by fine-tune job ${JSON.stringify(usedBy)}`);
    }
    this.datasets.delete(id);
    await removeDir(join(this.dir, id), this.dir);
    this.log.info({ datasetId: id }, 'dataset deleted');
  }
}

/** The examples of a JSONL file that is not a symbolic link. */
async function* readNoFollow(path: string): AsyncGenerator<NumberedExample> {
  const fh = await openNoFollow(path);
  // The stream closes the handle when it ends or is destroyed.
  yield* readSftJsonl(fh.createReadStream());
}

/** Checks a meta.json read back from disk. */
function parseMeta(value: unknown, id: string): DatasetInfo {
  const o = value as Record<string, unknown>;
  const ok =
    typeof o === 'object' && o !== null &&
    o.id === id &&
    typeof o.name === 'string' &&
    FORMATS.includes(o.format as DatasetFormat) &&
    Number.isInteger(o.numExamples) &&
    Number.isInteger(o.sizeBytes) &&
    typeof o.sha256 === 'string' && /^[0-9a-f]{64}$/.test(o.sha256) &&
    Number.isFinite(o.createdAtMs);
  if (!ok) throw new Error(`${META_FILE} of ${id} is malformed`);
  return {
    id,
    name: o.name as string,
    format: o.format as DatasetFormat,
    numExamples: o.numExamples as number,
    sizeBytes: o.sizeBytes as number,
    sha256: o.sha256 as string,
    createdAtMs: o.createdAtMs as number,
  };
}
