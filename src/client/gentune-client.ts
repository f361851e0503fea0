/**
 * Typed client of gentune.v1.ModelService: promises for unary calls, async
 * iterators for server streams, a deadline per call, and retries with backoff
 * on UNAVAILABLE for the idempotent reads (List*, Get*, GetServerInfo, health).
 *
 *   const client = new GentuneClient('127.0.0.1:50051');
 *   for await (const m of client.generate({ prompt: 'Hello' })) process.stdout.write(m.text);
 *
 * With auth and TLS (see README "Security"):
 *
 *   new GentuneClient('gentune.example:50051', { token, tls: { ca: readFileSync('ca.pem') } });
 *
 * Failed calls reject / throw grpc-js `ServiceError`s (`code`, `details`).
 * Breaking out of a stream's loop cancels the call.
 */
import {
  type CallOptions as GrpcCallOptions,
  type ChannelCredentials,
  type ClientOptions,
  type ClientReadableStream,
  type ClientUnaryCall,
  credentials as grpcCredentials,
  Metadata,
  type ServiceError,
} from '@grpc/grpc-js';
import type { Adapter } from '../gen/gentune/v1/adapters.js';
import type { Dataset, DeepPartial, UploadDatasetMetadata } from '../gen/gentune/v1/datasets.js';
import { UploadDatasetChunk } from '../gen/gentune/v1/datasets.js';
import { type EvaluateEvent, EvaluateRequest, type EvaluateResponse } from '../gen/gentune/v1/evaluate.js';
import { FineTuneRequest, ListFineTuneJobsRequest, type FineTuneEvent, type FineTuneJob } from '../gen/gentune/v1/fine_tune.js';
import { FinishReason, GenerateRequest, type GenerateResponse, type Usage } from '../gen/gentune/v1/generate.js';
import type { GetServerInfoResponse } from '../gen/gentune/v1/server_info.js';
import { ModelServiceClient } from '../gen/gentune/v1/service.js';
import { HealthCheckResponse_ServingStatus, HealthClient } from '../gen/health/v1/health.js';
import { DEFAULT_RETRY, withRetry, type RetryPolicy } from './retry.js';

/** Options of one call. */
export interface CallOptions {
  /** Deadline, in milliseconds from now. Unary calls default to the client's defaultTimeoutMs; streams to none. */
  timeoutMs?: number;
  /** Aborting it cancels the call. */
  signal?: AbortSignal;
  /** Sent as x-request-id (the server logs it). */
  requestId?: string;
}

export interface GentuneClientOptions {
  /** Unary deadline when a call sets none, in milliseconds. Default 30000. */
  defaultTimeoutMs?: number;
  /** Retry policy of idempotent calls. */
  retry?: Partial<RetryPolicy>;
  /**
   * Bearer token, sent as `authorization: Bearer <token>` metadata on every
   * call (the server's --token-file / GENTUNE_*_TOKEN). Default: none.
   */
  token?: string;
  /**
   * Connect over TLS: verify the server against `ca` (PEM; default: the
   * system's roots) and, for mutual TLS, present `cert` and `key` (PEM).
   * Ignored when `credentials` is given.
   */
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  /** Channel credentials; default: TLS when `tls` is given, else insecure (plaintext). */
  credentials?: ChannelCredentials;
  /** grpc-js channel options. */
  channelOptions?: Partial<ClientOptions>;
}

/** The whole output of a generation, as {@link GentuneClient.generateText} returns it. */
export interface GenerateResult {
  text: string;
  tokenIds: number[];
  finishReason: FinishReason;
  usage: Usage | undefined;
  /** "name@version" that served it; '' for the base model. */
  adapter: string;
}

/** Health status names of grpc.health.v1. */
export type HealthStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

/** Bytes per UploadDataset data message. */
export const UPLOAD_CHUNK_BYTES = 256 * 1024;

/** How long a stream left after its final message waits for the call's status before cancelling, in milliseconds. */
const FINAL_STATUS_WAIT_MS = 1000;

/** Resolves when `p` does or after `ms` milliseconds, whichever is first. */
async function settleWithin(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

type Callback<Res> = (err: ServiceError | null, res: Res) => void;
type UnaryMethod<Req, Res> = (req: Req, md: Metadata, opts: Partial<GrpcCallOptions>, cb: Callback<Res>) => ClientUnaryCall;

/** Splits bytes into chunks of at most `size`. */
function* split(data: Uint8Array, size: number): Generator<Uint8Array> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

/**
 * `token`, or a TypeError naming the first character that cannot travel: HTTP/2
 * drops a metadata value with leading or trailing whitespace on the way, so a
 * token with a stray space (or a newline from a file) would reach the server as
 * no token at all.
 */
function checkToken(token: string): string {
  const bad = token.search(/[^\x21-\x7e]/);
  if (bad === -1) return token;
  const what = /\s/.test(token[bad]!) ? 'whitespace' : 'a character outside printable ASCII';
  throw new TypeError(`\`token\` has ${what} at character ${bad + 1} of ${token.length}: a bearer token is printable ASCII without spaces`);
}

export class GentuneClient {
  /** The generated grpc-js client, for anything this wrapper does not cover. */
  readonly raw: ModelServiceClient;
  private readonly health: HealthClient;
  private readonly timeoutMs: number;
  private readonly retry: RetryPolicy;
  private readonly authorization: string | undefined;

  /** @param address "host:port" (any grpc-js target, e.g. "dns:///svc:50051"). */
  constructor(address: string, options: GentuneClientOptions = {}) {
    const tls = options.tls;
    const creds =
      options.credentials ??
      (tls ? grpcCredentials.createSsl(tls.ca ?? null, tls.key ?? null, tls.cert ?? null) : grpcCredentials.createInsecure());
    this.authorization = options.token ? `Bearer ${checkToken(options.token)}` : undefined;
    this.raw = new ModelServiceClient(address, creds, options.channelOptions);
    // Share the channel: same address, credentials and options.
    this.health = new HealthClient(address, creds, { ...options.channelOptions, channelOverride: this.raw.getChannel() });
    this.timeoutMs = options.defaultTimeoutMs ?? 30_000;
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
  }

  /** Closes the channel; calls in flight fail. */
  close(): void {
    this.raw.close();
  }

  private metadata(opts: CallOptions): Metadata {
    const md = new Metadata();
    if (opts.requestId) md.set('x-request-id', opts.requestId);
    if (this.authorization) md.set('authorization', this.authorization);
    return md;
  }

  private unaryOnce<Req, Res>(method: UnaryMethod<Req, Res>, req: Req, opts: CallOptions, deadline: number): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      const call = method(req, this.metadata(opts), { deadline }, (err, res) => (err ? reject(err) : resolve(res)));
      const onAbort = () => call.cancel();
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      call.on('status', () => opts.signal?.removeEventListener('abort', onAbort));
    });
  }

  /** A unary call; `idempotent` ones are retried on UNAVAILABLE within the deadline. */
  private unary<Req, Res>(method: UnaryMethod<Req, Res>, req: Req, opts: CallOptions, idempotent: boolean): Promise<Res> {
    const deadline = Date.now() + (opts.timeoutMs ?? this.timeoutMs);
    if (!idempotent) return this.unaryOnce(method, req, opts, deadline);
    return withRetry(this.retry, deadline, () => this.unaryOnce(method, req, opts, deadline), opts.signal);
  }

  /**
   * Turns a server stream into an async iterator; leaving the loop early cancels the call.
   * Leaving right after the stream's final message (`isFinal`) does not: the call's status
   * is already on its way, and cancelling would reset the HTTP/2 stream. Node's server
   * closes a connection that resets streams faster than ~33/s (rapid-reset protection),
   * which a busy client stopping at every `finish_reason` would otherwise trip.
   */
  private async *stream<T>(
    open: (md: Metadata, o: Partial<GrpcCallOptions>) => ClientReadableStream<T>,
    opts: CallOptions,
    isFinal: (message: T) => boolean = () => false,
  ): AsyncGenerator<T> {
    const call = open(this.metadata(opts), opts.timeoutMs === undefined ? {} : { deadline: Date.now() + opts.timeoutMs });
    const ended = new Promise<void>((resolve) => call.once('status', () => resolve()));
    const onAbort = () => call.cancel();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    let final = false;
    try {
      for await (const message of call) {
        final = isFinal(message as T);
        yield message as T;
      }
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
      if (final) await settleWithin(ended, FINAL_STATUS_WAIT_MS);
      call.cancel(); // no-op when the call already ended
    }
  }

  /** Streams a generation: one message per step, the last with finish_reason and usage. */
  generate(req: DeepPartial<GenerateRequest>, opts: CallOptions = {}): AsyncGenerator<GenerateResponse> {
    return this.stream((md, o) => this.raw.generate(GenerateRequest.fromPartial(req), md, o), opts, (m) => m.finishReason !== FinishReason.FINISH_REASON_UNSPECIFIED);
  }

  /** Runs a generation to the end and joins its output. */
  async generateText(req: DeepPartial<GenerateRequest>, opts: CallOptions = {}): Promise<GenerateResult> {
    const out: GenerateResult = { text: '', tokenIds: [], finishReason: 0, usage: undefined, adapter: '' };
    for await (const m of this.generate(req, opts)) {
      out.text += m.text;
      out.tokenIds.push(...m.tokenIds);
      if (m.finishReason !== 0) Object.assign(out, { finishReason: m.finishReason, usage: m.usage, adapter: m.adapter });
    }
    return out;
  }

  /** Submits a fine-tune job and streams its events (leaving the loop does not cancel the job). */
  fineTune(req: DeepPartial<FineTuneRequest>, opts: CallOptions = {}): AsyncGenerator<FineTuneEvent> {
    return this.stream((md, o) => this.raw.fineTune(FineTuneRequest.fromPartial(req), md, o), opts);
  }

  /** Streams a job's events from `fromSequence` (default 0: the whole history) to its end. */
  watchFineTune(jobId: string, fromSequence = 0, opts: CallOptions = {}): AsyncGenerator<FineTuneEvent> {
    return this.stream((md, o) => this.raw.watchFineTune({ jobId, fromSequence }, md, o), opts);
  }

  async getFineTuneJob(jobId: string, opts: CallOptions = {}): Promise<FineTuneJob> {
    const res = await this.unary(this.raw.getFineTuneJob.bind(this.raw), { jobId }, opts, true);
    return res.job!;
  }

  async listFineTuneJobs(req: DeepPartial<ListFineTuneJobsRequest> = {}, opts: CallOptions = {}): Promise<FineTuneJob[]> {
    const res = await this.unary(this.raw.listFineTuneJobs.bind(this.raw), ListFineTuneJobsRequest.fromPartial(req), opts, true);
    return res.jobs;
  }

  async cancelFineTune(jobId: string, opts: CallOptions = {}): Promise<FineTuneJob> {
    const res = await this.unary(this.raw.cancelFineTune.bind(this.raw), { jobId }, opts, false);
    return res.job!;
  }

  evaluate(req: DeepPartial<EvaluateRequest>, opts: CallOptions = {}): Promise<EvaluateResponse> {
    return this.unary(this.raw.evaluate.bind(this.raw), EvaluateRequest.fromPartial(req), opts, false);
  }

  /**
   * Evaluates with progress: EvaluateProgress events as the server works
   * through each model and phase, then one event carrying the
   * EvaluateResponse (the last). Not retried; `timeoutMs` defaults to none.
   */
  evaluateStream(req: DeepPartial<EvaluateRequest>, opts: CallOptions = {}): AsyncGenerator<EvaluateEvent> {
    return this.stream((md, o) => this.raw.evaluateStream(EvaluateRequest.fromPartial(req), md, o), opts, (m) => m.event?.$case === 'result');
  }

  /**
   * Uploads a JSONL dataset: the metadata message, then the bytes in
   * {@link UPLOAD_CHUNK_BYTES} chunks. Not retried (a stream cannot be replayed).
   */
  uploadDataset(
    metadata: DeepPartial<UploadDatasetMetadata>,
    data: Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
    opts: CallOptions = {},
  ): Promise<Dataset> {
    const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
    return new Promise<Dataset>((resolve, reject) => {
      const call = this.raw.uploadDataset(this.metadata(opts), { deadline }, (err, res) => (err ? reject(err) : resolve(res)));
      const onAbort = () => call.cancel();
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      call.on('status', () => opts.signal?.removeEventListener('abort', onAbort));
      // A failed read of the data (a missing file) is the caller's error, not
      // the CANCELLED status cancelling produces: reject with it first.
      let sourceFailed = false;
      async function* readingSource(pieces: Iterable<Uint8Array> | AsyncIterable<Uint8Array>) {
        try {
          yield* pieces;
        } catch (err) {
          sourceFailed = true;
          throw err;
        }
      }
      const send = async () => {
        const write = async (chunk: UploadDatasetChunk) => {
          if (!call.write(chunk)) await new Promise((r) => call.once('drain', r));
        };
        await write(UploadDatasetChunk.fromPartial({ payload: { $case: 'metadata', value: metadata } }));
        const pieces = data instanceof Uint8Array ? [data] : data;
        for await (const piece of readingSource(pieces)) {
          for (const chunk of split(piece, UPLOAD_CHUNK_BYTES)) {
            await write({ payload: { $case: 'data', value: Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength) } });
          }
        }
        call.end();
      };
      // A write after the server failed the call throws; the callback reports the status.
      send().catch((err: unknown) => {
        if (sourceFailed) reject(err);
        call.cancel();
      });
    });
  }

  async listDatasets(opts: CallOptions = {}): Promise<Dataset[]> {
    return (await this.unary(this.raw.listDatasets.bind(this.raw), {}, opts, true)).datasets;
  }

  async deleteDataset(datasetId: string, opts: CallOptions = {}): Promise<void> {
    await this.unary(this.raw.deleteDataset.bind(this.raw), { datasetId }, opts, false);
  }

  async listAdapters(opts: CallOptions = {}): Promise<Adapter[]> {
    return (await this.unary(this.raw.listAdapters.bind(this.raw), {}, opts, true)).adapters;
  }

  /** Loads "name" or "name@version", pinning it if asked. */
  async loadAdapter(adapter: string, pin = false, opts: CallOptions = {}): Promise<Adapter> {
    return (await this.unary(this.raw.loadAdapter.bind(this.raw), { adapter, pin }, opts, false)).adapter!;
  }

  async unloadAdapter(adapter: string, opts: CallOptions = {}): Promise<Adapter> {
    return (await this.unary(this.raw.unloadAdapter.bind(this.raw), { adapter }, opts, false)).adapter!;
  }

  async deleteAdapter(adapter: string, opts: CallOptions = {}): Promise<void> {
    await this.unary(this.raw.deleteAdapter.bind(this.raw), { adapter }, opts, false);
  }

  /** Points `adapter@alias` at `version` (creates or moves the alias); resolves with the adapter and its aliases. Not retried: one call, one move. */
  async setAdapterAlias(adapter: string, alias: string, version: number, opts: CallOptions = {}): Promise<Adapter> {
    return (await this.unary(this.raw.setAdapterAlias.bind(this.raw), { adapter, alias, version }, opts, false)).adapter!;
  }

  getServerInfo(opts: CallOptions = {}): Promise<GetServerInfoResponse> {
    return this.unary(this.raw.getServerInfo.bind(this.raw), {}, opts, true);
  }

  /** grpc.health.v1 Check of `service` ('' = the whole server). */
  async checkHealth(service = '', opts: CallOptions = {}): Promise<HealthStatus> {
    const res = await this.unary(this.health.check.bind(this.health), { service }, opts, true);
    return HealthCheckResponse_ServingStatus[res.status] as HealthStatus;
  }

  /** Polls health every `intervalMs` until SERVING; rejects after `timeoutMs`. */
  async waitUntilServing(timeoutMs = 60_000, intervalMs = 200): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      const status = await this.checkHealth('', { timeoutMs: Math.max(1, left) }).catch(() => 'UNKNOWN');
      if (status === 'SERVING') return;
      if (Date.now() + intervalMs >= deadline) throw new Error(`server not SERVING after ${timeoutMs} ms (last: ${status})`);
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  }
}
