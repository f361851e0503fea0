/**
 * Seeded generators of hostile ModelService requests for the fuzzer
 * (fuzz.test.ts), as wire bytes: random bytes; valid-shaped messages whose
 * fields take extreme values (huge, negative, NaN, Infinity, -0), very long
 * or path-like names, NUL bytes and invalid UTF-8; merged encodings (two
 * values of a oneof, repeated singular fields); flipped, truncated and
 * extended encodings; and JSONL dataset lines with deep nesting, huge
 * numbers, invalid UTF-8, wrong types and prototype keys.
 */
import { Rng } from '../../../src/common/rng.js';
import { EvaluateRequest } from '../../../src/gen/gentune/v1/evaluate.js';
import { DeleteDatasetRequest, ListDatasetsRequest, UploadDatasetChunk } from '../../../src/gen/gentune/v1/datasets.js';
import {
  CancelFineTuneRequest,
  FineTuneRequest,
  GetFineTuneJobRequest,
  ListFineTuneJobsRequest,
  WatchFineTuneRequest,
} from '../../../src/gen/gentune/v1/fine_tune.js';
import { GenerateRequest } from '../../../src/gen/gentune/v1/generate.js';
import { DeleteAdapterRequest, ListAdaptersRequest, LoadAdapterRequest, UnloadAdapterRequest } from '../../../src/gen/gentune/v1/adapters.js';
import { GetServerInfoRequest } from '../../../src/gen/gentune/v1/server_info.js';

/** A string the encoder writes as is, whose bytes are then replaced by invalid UTF-8 of the same length. */
const BAD_UTF8_MARK = '\u0001\u0002BADUTF\u0002\u0001';
const BAD_UTF8 = Buffer.from([0xff, 0xfe, 0xc0, 0x80, 0xed, 0xa0, 0x80, 0xf8, 0x88, 0x80, 0xc3]);

/** Ids the server handed out (datasets, jobs) and adapters it knows, so that some requests reach real objects. */
export interface KnownIds {
  datasets: string[];
  jobs: string[];
  adapters: string[];
}

type Encode = (value: object) => Uint8Array;
interface MessageType {
  fromPartial(o: object): unknown;
  encode(m: never): { finish(): Uint8Array };
}
const encoder = (type: MessageType): Encode => (value) => type.encode(type.fromPartial(value) as never).finish();

export class FuzzRequests {
  readonly rng: Rng;
  /**
   * Half the requests are tame: each field keeps a sane value (or its
   * default) nine times in ten, so that they get past validation and reach
   * the engine with one or two odd fields; the others are fuzzed throughout.
   */
  tame = false;
  constructor(seed: number, readonly known: KnownIds) {
    this.rng = new Rng(seed);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.rng.int(items.length)]!;
  }

  chance(p: number): boolean {
    return this.rng.next() < p;
  }

  bytes(n: number): Buffer {
    return Buffer.from(Array.from({ length: n }, () => this.rng.int(256)));
  }

  /** A number a client could put in any numeric field. */
  number(): number {
    if (this.tame && this.chance(0.9)) return this.pick([1, 2, 3]);
    return this.pick([
      0, -0, 1, -1, 2, 3, 7, 64, 255, 256, 0.5, 1e-45, -1e-45, 1e-7, 3.4e38, -3.4e38, 1e308,
      2 ** 31 - 1, 2 ** 31, -(2 ** 31), 2 ** 32 - 1, 2 ** 32, 2 ** 53, -(2 ** 53), Number.MAX_SAFE_INTEGER,
      Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, this.rng.int(100), this.rng.normal() * 1e6,
    ]);
  }

  /** An optional number: undefined half the time. */
  maybeNumber(): number | undefined {
    if (this.tame && this.chance(0.9)) return undefined;
    return this.chance(0.5) ? undefined : this.number();
  }

  /** A uint64 as the JS_STRING fields carry it (some invalid: the encoder may refuse them). */
  seed(): string | undefined {
    return this.pick([undefined, '0', '1', '18446744073709551615', '9007199254740993', String(this.rng.int(1e9))]);
  }

  string(): string {
    if (this.tame && this.chance(0.9)) return this.pick(['Hello there', 'abc', 'x y']);
    return this.pick([
      '', 'a', 'x', ' ', '\n', '\u0000', 'a\u0000b', '..', '../x', '/', 'a/b', '\\', 'C:\\x', '名前', '\ud800',
      'x'.repeat(65), 'x'.repeat(5000), BAD_UTF8_MARK, `a${BAD_UTF8_MARK}`, '@', 'a@', 'a@0', 'a@-1', 'a@1', 'a@99999999999',
      'tiny-gpt2', 'ft-', 'ds-', '%s%n', '${x}', '<script>', 'null', 'undefined', '__proto__', 'constructor',
      'Hello there', 'fixed', 'fixed@1', this.bytes(6).toString('latin1'),
    ]);
  }

  /** A name field: a known id or adapter some of the time. */
  name(kind: keyof KnownIds): string {
    const ids = this.known[kind];
    if (this.tame) return ids.length > 0 && this.chance(0.9) ? this.pick(ids) : 'abc';
    return ids.length > 0 && this.chance(0.3) ? this.pick(ids) : this.string();
  }

  strings(max = 6): string[] {
    return Array.from({ length: this.rng.int(max) }, () => this.string());
  }

  sampling(): object | undefined {
    if (this.chance(0.2)) return undefined;
    return {
      maxNewTokens: this.maybeNumber(),
      temperature: this.maybeNumber(),
      topK: this.maybeNumber(),
      topP: this.maybeNumber(),
      repetitionPenalty: this.maybeNumber(),
      seed: this.seed(),
      stop: this.chance(0.3) ? this.strings() : [],
    };
  }

  examples(): object[] {
    const n = this.tame ? this.pick([1, 2, 3]) : this.pick([0, 0, 1, 2, 3, 5, 60]);
    return Array.from({ length: n }, () =>
      this.tame && this.chance(0.9) ? { prompt: 'Q: 1?', completion: this.pick([' one', ' two']) } : this.pick([
        () => ({ prompt: this.string(), completion: this.string() }),
        () => ({ text: this.string() }),
        () => ({ messages: Array.from({ length: this.rng.int(4) }, () => ({ role: this.pick(['user', 'assistant', 'system', '', 'robot', '\u0000']), content: this.string() })) }),
        () => ({ prompt: 'Q', completion: ' A', text: 'both', messages: [{ role: 'assistant', content: 'x' }] }),
        () => ({}),
      ])(),
    );
  }

  /** `dataset_id` and `examples`: exactly one of them when tame. */
  dataSource(): { datasetId: string; examples: object[] } {
    if (this.tame) return this.chance(0.5) ? { datasetId: this.name('datasets'), examples: [] } : { datasetId: '', examples: this.examples() };
    return { datasetId: this.chance(0.5) ? '' : this.name('datasets'), examples: this.examples() };
  }

  /** A valid-shaped message of `method`, fields fuzzed. */
  message(method: string): { encode: Encode; value: object } {
    const r = this;
    switch (method) {
      case 'Generate':
        return {
          encode: encoder(GenerateRequest),
          value: {
            prompt: r.tame || r.chance(0.7) ? r.string() : '',
            promptTokenIds: (r.tame ? r.chance(0.05) : r.chance(0.3)) ? Array.from({ length: r.pick([1, 3, 70, 600]) }, () => r.pick([0, 1, 255, 256, 257, 2 ** 32 - 1, -1])) : [],
            adapter: r.chance(0.5) ? '' : r.name('adapters'),
            sampling: r.sampling(),
            logprobs: r.chance(0.3),
            topLogprobs: r.maybeNumber(),
          },
        };
      case 'FineTune':
        return {
          encode: encoder(FineTuneRequest),
          value: {
            baseModel: r.chance(0.5) ? '' : r.string(),
            adapter: r.tame ? r.pick(['fixed', 'fuzz-ft']) : r.name('adapters'),
            ...r.dataSource(),
            validationDatasetId: r.chance(0.7) ? '' : r.name('datasets'),
            method: r.pick([
              undefined,
              { $case: 'lora', value: { r: r.maybeNumber(), loraAlpha: r.maybeNumber(), loraDropout: r.maybeNumber(), targetModules: r.chance(0.5) ? [] : r.pick([['c_attn'], ['c_fc', 'c_fc'], r.strings()]) } },
              { $case: 'lastLayers', value: { numLayers: r.number() } },
            ]),
            hyperparameters: r.chance(0.2)
              ? undefined
              : {
                  epochs: r.maybeNumber(), maxSteps: r.pick([1, 2, r.maybeNumber()]), batchSize: r.maybeNumber(),
                  gradientAccumulationSteps: r.maybeNumber(), learningRate: r.maybeNumber(), warmupSteps: r.maybeNumber(),
                  lrScheduler: r.pick([0, 1, 2, 3, 4, 99, -1]), weightDecay: r.maybeNumber(), maxSeqLen: r.maybeNumber(),
                  evalIntervalSteps: r.maybeNumber(), earlyStoppingPatience: r.maybeNumber(), seed: r.seed(),
                  completionOnlyLoss: r.pick([undefined, true, false]), validationSplit: r.maybeNumber(), maxGradNorm: r.maybeNumber(),
                },
          },
        };
      case 'WatchFineTune':
        return { encode: encoder(WatchFineTuneRequest), value: { jobId: r.name('jobs'), fromSequence: r.number() } };
      case 'GetFineTuneJob':
        return { encode: encoder(GetFineTuneJobRequest), value: { jobId: r.name('jobs') } };
      case 'CancelFineTune':
        return { encode: encoder(CancelFineTuneRequest), value: { jobId: r.name('jobs') } };
      case 'ListFineTuneJobs':
        return { encode: encoder(ListFineTuneJobsRequest), value: { state: r.pick([0, 1, 2, 5, 6, 1000, -1]), adapter: r.chance(0.5) ? '' : r.name('adapters'), limit: r.maybeNumber() } };
      case 'Evaluate':
      case 'EvaluateStream':
        return {
          encode: encoder(EvaluateRequest),
          value: {
            ...r.dataSource(),
            adapters: r.chance(0.5) ? [] : Array.from({ length: r.pick([1, 2, 17]) }, () => r.name('adapters')),
            includeBaseModel: r.chance(0.5),
            metrics: r.chance(0.5) ? [] : Array.from({ length: r.rng.int(4) }, () => r.pick([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 4000, -1])),
            generation: r.sampling(),
            maxExamples: r.pick([undefined, 1, 2, r.number()]),
            maxSeqLen: r.maybeNumber(),
            includeExamples: r.chance(0.5),
          },
        };
      case 'ListDatasets':
        return { encode: encoder(ListDatasetsRequest), value: {} };
      case 'DeleteDataset':
        return { encode: encoder(DeleteDatasetRequest), value: { datasetId: r.name('datasets') } };
      case 'ListAdapters':
        return { encode: encoder(ListAdaptersRequest), value: {} };
      case 'LoadAdapter':
        return { encode: encoder(LoadAdapterRequest), value: { adapter: r.name('adapters'), pin: r.chance(0.5) } };
      case 'UnloadAdapter':
        return { encode: encoder(UnloadAdapterRequest), value: { adapter: r.name('adapters') } };
      case 'DeleteAdapter':
        // Rarely the adapter the other requests use: deleting it would leave them nothing to reach.
        return { encode: encoder(DeleteAdapterRequest), value: { adapter: r.chance(0.03) ? r.name('adapters') : r.string() } };
      case 'GetServerInfo':
        return { encode: encoder(GetServerInfoRequest), value: {} };
      default:
        throw new Error(`no generator for ${method}`);
    }
  }

  /** Wire bytes for a unary or server-streaming `method`. */
  request(method: string): Buffer {
    this.tame = this.chance(0.5);
    if (!this.tame && this.chance(0.25)) return this.bytes(this.pick([0, 1, 2, 5, 17, 100, 1000]));
    let wire: Buffer;
    try {
      const { encode, value } = this.message(method);
      wire = Buffer.from(encode(value));
      // Protobuf merges concatenated messages: a second value overrides singular fields and the oneof.
      if (this.chance(0.1)) wire = Buffer.concat([wire, Buffer.from(encode(this.message(method).value))]);
    } catch {
      // The encoder refused a value (an invalid uint64 string): send what a broken client would.
      wire = this.bytes(this.rng.int(64));
    }
    return this.mutate(this.badUtf8(wire));
  }

  /** Replaces every BAD_UTF8_MARK with invalid UTF-8 of the same length (the length prefixes stay right). */
  badUtf8(wire: Buffer): Buffer {
    const mark = Buffer.from(BAD_UTF8_MARK);
    for (let at = wire.indexOf(mark); at >= 0; at = wire.indexOf(mark, at + mark.length)) BAD_UTF8.copy(wire, at, 0, mark.length);
    return wire;
  }

  /** Sometimes flips, truncates, extends or adds unknown fields to an encoding. */
  mutate(wire: Buffer): Buffer {
    const u = this.rng.next();
    if (this.tame || u < 0.75 || wire.length === 0) return wire;
    if (u < 0.83) {
      const out = Buffer.from(wire);
      for (let k = 0; k < 1 + this.rng.int(3); k++) out[this.rng.int(out.length)] = this.rng.int(256);
      return out;
    }
    if (u < 0.9) return wire.subarray(0, this.rng.int(wire.length));
    if (u < 0.95) return Buffer.concat([wire, this.bytes(1 + this.rng.int(16))]);
    // Unknown field 99 (varint 0x99 0x06 = tag 99 << 3), then an unknown length-delimited field 100.
    return Buffer.concat([wire, Buffer.from([0x98, 0x06, 0x7f, 0xa2, 0x06, 0x03, 0x61, 0x62, 0x63])]);
  }

  /** One JSONL line (without its newline). */
  datasetLine(): Buffer {
    if (this.tame && this.chance(0.9)) return Buffer.from(JSON.stringify({ prompt: `p${this.rng.int(100)}`, completion: ` c${this.rng.int(100)}` }));
    const depth = this.pick([10, 1000, 20_000]);
    const make = this.pick([
      () => JSON.stringify({ prompt: this.string(), completion: this.string() }),
      () => JSON.stringify({ prompt: `p${this.rng.int(100)}`, completion: ` c${this.rng.int(100)}` }),
      () => JSON.stringify({ text: this.string() }),
      () => JSON.stringify({ messages: [{ role: 'user', content: this.string() }, { role: 'assistant', content: this.string() }] }),
      () => JSON.stringify({ messages: [{ role: 'system', content: 5 }] }),
      () => JSON.stringify({ messages: 'x'.repeat(50) }),
      () => JSON.stringify({ prompt: 'x', completion: 'y', text: 'z' }),
      () => '{"prompt": 1e999, "completion": -1e999}',
      () => '{"prompt": NaN, "completion": Infinity}',
      () => '{"prompt": -0, "completion": 12345678901234567890123}',
      () => `${'['.repeat(depth)}${']'.repeat(depth)}`,
      () => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`,
      () => `{"prompt": ${'['.repeat(depth)}"x"${']'.repeat(depth)}, "completion": "y"}`,
      () => '{"__proto__": {"prompt": "x", "completion": "y"}}',
      () => '{"constructor": {"prototype": {"text": "x"}}, "text": "ok"}',
      () => '{"prompt": "x", "completion": "y", "prompt": 5}',
      () => '{"prompt": "a\u0000b", "completion": "c"}',
      () => `{"prompt": "a${BAD_UTF8_MARK}", "completion": "b"}`,
      () => `{"text": "${'x'.repeat(30_000)}"}`,
      () => this.pick(['', ' ', '\t', '\r', 'null', '1', '"str"', 'true', '[]', '{}', '{', '}', '{"prompt":', '\u0000']),
      () => this.bytes(1 + this.rng.int(40)).toString('latin1'),
    ]);
    return this.badUtf8(Buffer.from(make(), 'utf8'));
  }

  /** The messages of one UploadDataset call: usually metadata first, then data chunks of fuzzed lines. */
  upload(): Buffer[] {
    const chunk = (value: object) => Buffer.from(UploadDatasetChunk.encode(UploadDatasetChunk.fromPartial(value)).finish());
    this.tame = this.chance(0.5);
    const messages: Buffer[] = [];
    if (this.tame || this.chance(0.9)) messages.push(chunk({ payload: { $case: 'metadata', value: { name: this.tame || this.chance(0.7) ? `fuzz-${this.rng.int(1000)}` : this.string(), format: this.tame ? 0 : this.pick([0, 1, 2, 3, 4, 99]) } } }));
    const lines = Array.from({ length: this.tame ? this.pick([1, 3, 10]) : this.pick([0, 1, 2, 3, 5, 40]) }, () => this.datasetLine());
    const body = Buffer.concat(lines.flatMap((l) => [l, Buffer.from(this.tame ? '\n' : this.pick(['\n', '\n', '\r\n', '']))]));
    // Split at random points: lines cross chunk boundaries, multi-byte characters too.
    for (let at = 0; at < body.length; ) {
      const size = 1 + this.rng.int(Math.max(1, Math.min(body.length - at, this.pick([3, 100, 70_000]))));
      messages.push(chunk({ payload: { $case: 'data', value: body.subarray(at, at + size) } }));
      at += size;
    }
    if (this.tame) return messages;
    if (this.chance(0.05)) messages.push(chunk({ payload: { $case: 'metadata', value: { name: 'late' } } }));
    if (this.chance(0.05)) messages.push(chunk({}));
    return messages.map((m) => (this.chance(0.05) ? this.mutate(m) : m));
  }
}
