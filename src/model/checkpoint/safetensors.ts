import { closeSync, constants, fstatSync, openSync, readSync as readFd } from 'node:fs';
import { open } from 'node:fs/promises';
import { endianness } from 'node:os';
import { writeFileAtomic } from '../../common/atomic-write.js';
import { InvalidArgument, NotFound } from '../../common/errors.js';
import { bfloat16ToFloat32, float16ToFloat32, float32ToBfloat16, float32ToFloat16 } from './dtype.js';

/**
 * Reads and writes the safetensors format
 * (https://github.com/huggingface/safetensors#format): an 8-byte
 * little-endian header length N, N bytes of JSON header (padded with spaces),
 * then the byte buffer. Each header entry gives a tensor's dtype, shape and
 * `data_offsets` [begin, end) relative to the start of the byte buffer; the
 * optional `__metadata__` entry maps strings to strings. Validation follows
 * the reference implementation: the tensors must tile the buffer exactly.
 */

/** A tensor in host memory, row-major. */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

/** The dtypes this module converts to and from float32. */
export type SafetensorsDtype = 'F32' | 'F16' | 'BF16';

/** Options for {@link writeSafetensors}. */
export interface WriteSafetensorsOptions {
  /** Storage dtype of every tensor; default F32. */
  dtype?: SafetensorsDtype;
  /** Written as `__metadata__` (Hugging Face expects `{ format: 'pt' }`). */
  metadata?: Record<string, string>;
}

const BYTES: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2 };
// Bits per element of every dtype the format defines: enough to check the
// layout of tensors we skip, and to say "unsupported" rather than "unknown".
const BITS: Record<string, number> = {
  BOOL: 8, U8: 8, I8: 8, F8_E5M2: 8, F8_E4M3: 8, F8_E8M0: 8, F6_E2M3: 6, F6_E3M2: 6, F4: 4,
  I16: 16, U16: 16, F16: 16, BF16: 16, I32: 32, U32: 32, F32: 32, I64: 64, U64: 64, F64: 64, C64: 64,
};
/** The reference implementation refuses bigger headers; so do we, before allocating. */
const MAX_HEADER_BYTES = 100_000_000;
const LITTLE_ENDIAN = endianness() === 'LE';
const CHUNK_BYTES = 1 << 30;

/** Options for {@link readSafetensors}. */
export interface ReadSafetensorsOptions {
  /**
   * Which tensors to decode (default: all). The others are still checked for
   * layout but not read, and may have any dtype the format defines, so a
   * caller can skip, say, a BOOL attention-mask buffer it does not need.
   */
  include?: (name: string) => boolean;
  /**
   * Read with synchronous file I/O (default false). Each asynchronous read
   * costs an event-loop turn, and on a serving thread every turn waits behind
   * a decode step; a blocking read of an adapter-sized file takes far less.
   */
  blocking?: boolean;
  /**
   * Refuse a symbolic link (default false: a Hugging Face cache links its
   * files to blobs). The stores set it: nothing under the data directory is
   * read through a link, which could lead anywhere (O_NOFOLLOW: ELOOP).
   */
  noFollow?: boolean;
}

/** Positioned reads of one open file, asynchronous (a FileHandle) or blocking (a descriptor). */
interface ReadSource {
  size(): Promise<number> | number;
  /** Reads up to `length` bytes at `position` into `dst` from `offset`; resolves with the bytes read (0 at the end). */
  read(dst: Uint8Array, offset: number, length: number, position: number): Promise<number> | number;
  close(): Promise<void> | void;
}

async function openSource(path: string, blocking: boolean, noFollow: boolean): Promise<ReadSource> {
  const flags = constants.O_RDONLY | (noFollow ? constants.O_NOFOLLOW : 0);
  if (blocking) {
    const fd = openSync(path, flags);
    if (noFollow && !fstatSync(fd).isFile()) {
      closeSync(fd);
      throw new InvalidArgument(`${path}: not a regular file`);
    }
    return { size: () => fstatSync(fd).size, read: (dst, offset, length, position) => readFd(fd, dst, offset, length, position), close: () => closeSync(fd) };
  }
  const fh = await open(path, flags);
  if (noFollow && !(await fh.stat()).isFile()) {
    await fh.close();
    throw new InvalidArgument(`${path}: not a regular file`);
  }
  return {
    size: async () => (await fh.stat()).size,
    read: async (dst, offset, length, position) => (await fh.read(dst, offset, length, position)).bytesRead,
    close: () => fh.close(),
  };
}

interface Entry {
  name: string;
  dtype: string;
  skip: boolean;
  shape: number[];
  begin: number;
  end: number;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Product of the dims; throws `InvalidArgument` (via `fail`) past 2^53. */
function elementCount(shape: number[], fail: (why: string) => never): number {
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (!Number.isSafeInteger(n)) fail(`shape [${shape}] has too many elements`);
  }
  return n;
}

function parseEntry(file: string, name: string, raw: unknown, skip: boolean): Entry {
  const fail = (why: string): never => {
    throw new InvalidArgument(`${file}: tensor \`${name}\` ${why}`);
  };
  if (!isRecord(raw)) fail('header entry must be an object');
  const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
  if (typeof dtype !== 'string') fail(`has no dtype (got ${JSON.stringify(dtype)})`);
  const known = Object.hasOwn(BITS, dtype as string);
  if (!known || (!skip && !Object.hasOwn(BYTES, dtype as string))) {
    fail(`has ${known ? 'unsupported' : 'unknown'} dtype ${JSON.stringify(dtype)} (supported: F32, F16, BF16)`);
  }
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    fail(`has an invalid shape ${JSON.stringify(shape)} (want an array of non-negative integers)`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) || offsets[0] > offsets[1]) {
    fail(`has invalid data_offsets ${JSON.stringify(offsets)} (want [begin, end] with 0 <= begin <= end)`);
  }
  const [begin, end] = offsets as number[];
  const entry: Entry = { name, dtype: dtype as string, skip, shape: shape as number[], begin, end };
  const bits = elementCount(entry.shape, fail) * BITS[entry.dtype];
  if (!Number.isSafeInteger(bits)) fail(`shape [${entry.shape}] has too many elements`);
  if (bits % 8 !== 0) fail(`has shape [${entry.shape}] of ${entry.dtype}, which is not a whole number of bytes`);
  const want = bits / 8;
  if (end - begin !== want) {
    fail(`has data_offsets [${begin},${end}] (${end - begin} bytes) but shape [${entry.shape}] of ${entry.dtype} needs ${want} bytes`);
  }
  return entry;
}

/** Parses and checks the header against a byte buffer of `dataBytes` bytes. */
function parseHeader(
  file: string,
  text: string,
  dataBytes: number,
  include: (name: string) => boolean,
): { entries: Entry[]; metadata: Record<string, string> } {
  if (!text.startsWith('{')) throw new InvalidArgument(`${file}: header does not start with '{': not a safetensors file`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new InvalidArgument(`${file}: header is not valid JSON (${(err as Error).message})`, { cause: err });
  }
  if (!isRecord(json)) throw new InvalidArgument(`${file}: header must be a JSON object`);
  let metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, raw] of Object.entries(json)) {
    if (name === '__metadata__') {
      if (!isRecord(raw)) throw new InvalidArgument(`${file}: \`__metadata__\` must be an object of strings`);
      for (const [k, v] of Object.entries(raw)) {
        if (typeof v !== 'string') {
          throw new InvalidArgument(`${file}: \`__metadata__.${k}\` must be a string, got ${JSON.stringify(v)}`);
        }
      }
      metadata = Object.fromEntries(Object.entries(raw)) as Record<string, string>; // own keys only, even `__proto__`
    } else {
      entries.push(parseEntry(file, name, raw, !include(name)));
    }
  }
  // Like the reference implementation: sorted by offset, the tensors must
  // follow one another with no gap or overlap and end exactly at the end of the file.
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (const e of sorted) {
    if (e.end > dataBytes) {
      throw new InvalidArgument(
        `${file}: tensor \`${e.name}\` data_offsets [${e.begin},${e.end}] go past the end of the data (${dataBytes} bytes): file truncated?`,
      );
    }
    if (e.begin !== at) {
      const why = e.begin < at ? 'overlaps the tensor before it' : 'leaves a gap after the tensor before it';
      throw new InvalidArgument(`${file}: tensor \`${e.name}\` data_offsets [${e.begin},${e.end}] ${why} (which ends at ${at})`);
    }
    at = e.end;
  }
  if (at !== dataBytes) {
    throw new InvalidArgument(`${file}: ${dataBytes - at} bytes after the last tensor are not described by the header`);
  }
  return { entries, metadata };
}

/** Fills `dst` from the file at byte `position`, or throws if the file ends first. */
async function readFully(fh: ReadSource, file: string, dst: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < dst.length) {
    const want = Math.min(dst.length - done, CHUNK_BYTES);
    const bytesRead = await fh.read(dst, done, want, position + done);
    if (bytesRead === 0) throw new InvalidArgument(`${file}: file ended early (truncated while reading?)`);
    done += bytesRead;
  }
}

function bytesOf(a: Float32Array | Uint16Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

async function readTensor(fh: ReadSource, file: string, e: Entry, dataStart: number): Promise<HostTensor> {
  const count = (e.end - e.begin) / BYTES[e.dtype as SafetensorsDtype];
  const data = new Float32Array(count);
  if (e.dtype === 'F32') {
    await readFully(fh, file, bytesOf(data), dataStart + e.begin);
    if (!LITTLE_ENDIAN) Buffer.from(data.buffer).swap32();
  } else {
    const half = new Uint16Array(count);
    await readFully(fh, file, bytesOf(half), dataStart + e.begin);
    if (!LITTLE_ENDIAN) Buffer.from(half.buffer).swap16();
    (e.dtype === 'F16' ? float16ToFloat32 : bfloat16ToFloat32)(half, data);
  }
  return { shape: [...e.shape], data };
}

/** A failure to open `path` as the error this module throws for it. */
function openError(path: string, err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new NotFound(`${path}: no such file`, { cause: err });
  if (code === 'ELOOP') return new InvalidArgument(`${path}: is a symbolic link, which is not followed`, { cause: err });
  return err;
}

function checkSize(path: string, size: number): void {
  if (size < 8) throw new InvalidArgument(`${path}: file is ${size} bytes, too short for a safetensors header`);
}

/** The header's length N from the 8-byte prefix, checked against the file's `size` and the limit. */
function headerLength(path: string, prefix: Uint8Array, size: number): number {
  const headerBytes = Buffer.from(prefix).readBigUInt64LE(0);
  if (headerBytes > BigInt(size - 8)) {
    throw new InvalidArgument(`${path}: header length ${headerBytes} bytes is beyond the file (${size} bytes)`);
  }
  if (headerBytes > BigInt(MAX_HEADER_BYTES)) {
    throw new InvalidArgument(`${path}: header length ${headerBytes} bytes exceeds the limit of ${MAX_HEADER_BYTES}`);
  }
  return Number(headerBytes);
}

function decodeHeader(path: string, raw: Uint8Array): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(raw);
  } catch (err) {
    throw new InvalidArgument(`${path}: header is not valid UTF-8`, { cause: err });
  }
}

/** What a safetensors header says of a file: each tensor's dtype and shape, the metadata, the file's size. */
export interface SafetensorsHeader {
  tensors: Map<string, { dtype: string; shape: number[] }>;
  metadata: Record<string, string>;
  /** Bytes of the whole file. */
  sizeBytes: number;
  mtimeMs: number;
}

/**
 * Reads and checks a safetensors file's header, with blocking I/O and
 * without reading the tensors: the layout is checked as {@link readSafetensors}
 * checks it (so a truncated file fails here), and so are dtypes (any the format
 * defines passes for tensors `include` skips). A few small reads: the stores
 * validate every adapter they list.
 * @throws as readSafetensors does.
 */
export function readSafetensorsHeaderSync(path: string, options: Pick<ReadSafetensorsOptions, 'include' | 'noFollow'> = {}): SafetensorsHeader {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | (options.noFollow ? constants.O_NOFOLLOW : 0));
  } catch (err) {
    throw openError(path, err);
  }
  try {
    const st = fstatSync(fd);
    if (options.noFollow && !st.isFile()) throw new InvalidArgument(`${path}: not a regular file`);
    checkSize(path, st.size);
    const readAll = (dst: Uint8Array, position: number) => {
      for (let done = 0; done < dst.length; ) {
        const got = readFd(fd, dst, done, dst.length - done, position + done);
        if (got === 0) throw new InvalidArgument(`${path}: file ended early (truncated while reading?)`);
        done += got;
      }
    };
    const prefix = new Uint8Array(8);
    readAll(prefix, 0);
    const n = headerLength(path, prefix, st.size);
    const raw = new Uint8Array(n);
    readAll(raw, 8);
    const { entries, metadata } = parseHeader(path, decodeHeader(path, raw), st.size - 8 - n, options.include ?? (() => true));
    return { tensors: new Map(entries.map((e) => [e.name, { dtype: e.dtype, shape: [...e.shape] }])), metadata, sizeBytes: st.size, mtimeMs: st.mtimeMs };
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads a safetensors file; F16 and BF16 tensors are widened to float32.
 * Tensors come back in file-offset order, without those `options.include` skips.
 * @throws NotFound if the file does not exist; InvalidArgument (naming the
 *   file and the tensor) for any malformation or unsupported dtype.
 */
export async function readSafetensors(
  path: string,
  options: ReadSafetensorsOptions = {},
): Promise<{ tensors: Map<string, HostTensor>; metadata: Record<string, string> }> {
  let fh: ReadSource;
  try {
    fh = await openSource(path, options.blocking ?? false, options.noFollow ?? false);
  } catch (err) {
    throw openError(path, err);
  }
  try {
    const size = await fh.size();
    checkSize(path, size);
    const prefix = new Uint8Array(8);
    await readFully(fh, path, prefix, 0);
    const n = headerLength(path, prefix, size);
    const raw = new Uint8Array(n);
    await readFully(fh, path, raw, 8);
    const { entries, metadata } = parseHeader(path, decodeHeader(path, raw), size - 8 - n, options.include ?? (() => true));
    const tensors = new Map<string, HostTensor>();
    for (const e of [...entries].sort((a, b) => a.begin - b.begin)) {
      if (e.skip) continue;
      tensors.set(e.name, await readTensor(fh, path, e, 8 + n));
    }
    return { tensors, metadata };
  } finally {
    await fh.close();
  }
}

function encode(data: Float32Array, dtype: SafetensorsDtype): Uint8Array {
  if (dtype === 'F32') {
    if (LITTLE_ENDIAN) return bytesOf(data);
    const copy = Buffer.from(new Float32Array(data).buffer);
    return copy.swap32();
  }
  const half = (dtype === 'F16' ? float32ToFloat16 : float32ToBfloat16)(data);
  if (!LITTLE_ENDIAN) Buffer.from(half.buffer).swap16();
  return bytesOf(half);
}

/**
 * Writes tensors as a safetensors file, atomically (src/common/atomic-write.ts).
 * Tensors are laid out in sorted name order; the header is padded with spaces
 * to a multiple of 8 bytes, as the reference implementation does, so every
 * tensor starts 8-byte aligned relative to the buffer.
 * @throws InvalidArgument if a name is empty or `__metadata__`, or a tensor's
 *   data length does not match its shape.
 */
export async function writeSafetensors(
  path: string,
  tensors: Map<string, HostTensor>,
  options: WriteSafetensorsOptions = {},
): Promise<void> {
  const dtype = options.dtype ?? 'F32';
  if (!Object.hasOwn(BYTES, dtype)) throw new InvalidArgument(`\`dtype\` must be F32, F16 or BF16, got ${JSON.stringify(dtype)}`);
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = {};
  if (options.metadata && Object.keys(options.metadata).length > 0) {
    for (const [k, v] of Object.entries(options.metadata)) {
      if (typeof v !== 'string') throw new InvalidArgument(`${path}: metadata \`${k}\` must be a string, got ${JSON.stringify(v)}`);
    }
    header.__metadata__ = options.metadata;
  }
  let offset = 0;
  for (const name of names) {
    const t = tensors.get(name)!;
    if (name === '' || name === '__metadata__') throw new InvalidArgument(`${path}: invalid tensor name ${JSON.stringify(name)}`);
    const fail = (why: string): never => {
      throw new InvalidArgument(`${path}: tensor \`${name}\` ${why}`);
    };
    if (!Array.isArray(t.shape) || !t.shape.every(isCount)) fail(`has an invalid shape ${JSON.stringify(t.shape)}`);
    const count = elementCount(t.shape, fail);
    if (!(t.data instanceof Float32Array) || t.data.length !== count) {
      fail(`has ${t.data?.length} values but shape [${t.shape}] needs ${count}`);
    }
    const bytes = count * BYTES[dtype];
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  const jsonBytes = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((8 - (jsonBytes % 8)) % 8);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(Buffer.byteLength(json, 'utf8')));
  function* chunks(): Generator<Uint8Array | string> {
    yield prefix;
    yield json;
    for (const name of names) yield encode(tensors.get(name)!.data, dtype);
  }
  await writeFileAtomic(path, chunks());
}
