/**
 * Server configuration, read in ONE place: command-line flags, else GENTUNE_*
 * environment variables, else defaults; every value validated with zod. Nothing
 * else in gentune reads process.env: the resulting {@link GentuneConfig} is
 * passed down.
 *
 *   --max-new-tokens 128   ==   GENTUNE_MAX_NEW_TOKENS=128
 *
 * Errors name the flag (and the variable when the value came from one):
 *   "`--port` must be an integer in 0..65535, got \"abc\" (from GENTUNE_PORT)"
 */
import type { Command } from 'commander';
import { Option } from 'commander';
import { z } from 'zod';
import { InvalidArgument } from '../common/errors.js';
import type { AdapterRef } from './engine-api.js';

export type BackendName = 'auto' | 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** Server limits; requests beyond them fail with INVALID_ARGUMENT or RESOURCE_EXHAUSTED. */
export interface LimitsConfig {
  /** Concurrent streaming calls (Generate, FineTune, WatchFineTune), all clients together. */
  maxConcurrentStreams: number;
  /** Prompt length, in tokens. */
  maxPromptTokens: number;
  /** Ceiling (and the cap of the default) of max_new_tokens, in tokens. */
  maxNewTokens: number;
  /** Size of one dataset upload, in bytes. */
  maxUploadBytes: number;
  /** Sequences decoded together per step; also the fine-tune batch_size ceiling. */
  maxBatchSize: number;
  /** Generate requests waiting for a batch slot. */
  maxQueue: number;
  /**
   * Prompt tokens (columns) a joining prefill runs per decode step: longer
   * prompts are prefilled in chunks interleaved with the running batch's
   * decode steps, so they cannot stall running streams for long.
   */
  prefillChunk: number;
}

/** Everything the server needs to start. */
export interface GentuneConfig {
  /** Interface the gRPC server binds. */
  host: string;
  /** gRPC port; 0 picks a free one. */
  port: number;
  /** Port of the HTTP /metrics, /healthz, /readyz endpoint; 0 picks a free one. */
  metricsPort: number;
  /** Datasets, adapters and job logs live here. */
  dataDir: string;
  /** Base model folder (Hugging Face GPT-2 layout). */
  model: string;
  backend: BackendName;
  logLevel: LogLevel;
  /** Log prompt and output text (debug only: they may hold user data). */
  logPrompts: boolean;
  limits: LimitsConfig;
  /**
   * Memory of resident adapters, in bytes, above which the least recently used
   * idle, unpinned ones are evicted (pinned adapters and adapters serving
   * requests stay, even past it). Passed to createEngine as `adapterBudgetBytes`.
   */
  adapterMemory: number;
  /**
   * Resident adapter versions (loaded or pinned) above which the least
   * recently used idle, unpinned ones are evicted, like `adapterMemory`.
   */
  maxAdapters: number;
  /** Adapters loaded when the engine starts (`--preload name[,name@version]`); latest when no version. */
  preload: AdapterRef[];
  /**
   * Period of the full rescan of `<dataDir>/adapters` that backs up fs.watch
   * (which misses events on network volumes), in milliseconds; 0 = fs.watch only.
   */
  adapterRescanMs: number;
  /** How long shutdown lets calls and jobs finish before cancelling them, in milliseconds. */
  graceMs: number;
}

type Key =
  | 'host' | 'port' | 'metricsPort' | 'dataDir' | 'model' | 'backend' | 'logLevel' | 'logPrompts'
  | keyof LimitsConfig | 'adapterMemory' | 'maxAdapters' | 'preload' | 'adapterRescanMs' | 'graceMs';

interface Setting {
  key: Key;
  /** Commander flag spec. */
  flag: string;
  description: string;
  default: string;
  /** Human description of valid values, used in error messages. */
  expect: string;
  schema: z.ZodType<string | number | boolean | AdapterRef[], string>;
}

const int = (min: number, max: number) =>
  z.string().trim().regex(/^\d+$/).transform(Number).pipe(z.number().int().min(min).max(max));
const choice = <T extends string>(values: readonly [T, ...T[]]) => z.string().trim().pipe(z.enum(values));
const text = z.string().trim().min(1);
const bool = z
  .string()
  .trim()
  .toLowerCase()
  .pipe(z.enum(['true', 'false', '1', '0']))
  .transform((v) => v === 'true' || v === '1');

const ADAPTER_NAME = /^[A-Za-z0-9._-]{1,64}$/;
/** "name[@version][,...]" -> adapter refs ('' = none). */
const adapterRefs = z.string().transform((value, ctx): AdapterRef[] => {
  const refs: AdapterRef[] = [];
  for (const item of value.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const m = /^(.+?)(?:@([1-9]\d{0,8}))?$/.exec(item);
    if (!m || !ADAPTER_NAME.test(m[1]) || m[1].includes('..')) {
      ctx.addIssue({ code: 'custom', message: item });
      return z.NEVER;
    }
    refs.push(m[2] === undefined ? { name: m[1] } : { name: m[1], version: Number(m[2]) });
  }
  return refs;
});

const BACKENDS = ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const MAX_INT = 2 ** 31 - 1;

const SETTINGS: Setting[] = [
  { key: 'host', flag: '--host <host>', description: 'interface to bind', default: '127.0.0.1', expect: 'a host name or address', schema: text },
  { key: 'port', flag: '--port <port>', description: 'gRPC port (0 = any free port)', default: '50051', expect: 'an integer in 0..65535', schema: int(0, 65535) },
  { key: 'metricsPort', flag: '--metrics-port <port>', description: 'HTTP metrics/health port', default: '9464', expect: 'an integer in 0..65535', schema: int(0, 65535) },
  { key: 'dataDir', flag: '--data-dir <dir>', description: 'datasets, adapters and job logs', default: './data', expect: 'a directory path', schema: text },
  { key: 'model', flag: '--model <dir>', description: 'base model folder (Hugging Face GPT-2 layout)', default: 'models/gentune-mini', expect: 'a directory path', schema: text },
  { key: 'backend', flag: '--backend <name>', description: `TensorFlow.js backend: ${BACKENDS.join('|')}`, default: 'auto', expect: `one of ${BACKENDS.join(', ')}`, schema: choice(BACKENDS) },
  { key: 'logLevel', flag: '--log-level <level>', description: `log level: ${LOG_LEVELS.join('|')}`, default: 'info', expect: `one of ${LOG_LEVELS.join(', ')}`, schema: choice(LOG_LEVELS) },
  { key: 'logPrompts', flag: '--log-prompts [bool]', description: 'log prompt and output text (debug only)', default: 'false', expect: 'true or false', schema: bool },
  { key: 'maxConcurrentStreams', flag: '--max-concurrent-streams <n>', description: 'concurrent streaming calls', default: '64', expect: `an integer in 1..${MAX_INT}`, schema: int(1, MAX_INT) },
  { key: 'maxPromptTokens', flag: '--max-prompt-tokens <n>', description: 'prompt length, tokens', default: '1024', expect: `an integer in 1..${MAX_INT}`, schema: int(1, MAX_INT) },
  { key: 'maxNewTokens', flag: '--max-new-tokens <n>', description: 'max_new_tokens ceiling, tokens', default: '256', expect: `an integer in 1..${MAX_INT}`, schema: int(1, MAX_INT) },
  { key: 'maxUploadBytes', flag: '--max-upload-bytes <n>', description: 'dataset upload size, bytes', default: String(64 * 1024 * 1024), expect: `an integer in 1..${Number.MAX_SAFE_INTEGER}`, schema: int(1, Number.MAX_SAFE_INTEGER) },
  { key: 'maxBatchSize', flag: '--max-batch-size <n>', description: 'sequences decoded per step', default: '16', expect: 'an integer in 1..4096', schema: int(1, 4096) },
  { key: 'maxQueue', flag: '--max-queue <n>', description: 'Generate requests waiting for a slot', default: '256', expect: `an integer in 0..${MAX_INT}`, schema: int(0, MAX_INT) },
  { key: 'adapterMemory', flag: '--adapter-memory <bytes>', description: 'resident adapter memory before idle ones are evicted, bytes', default: String(512 * 1024 * 1024), expect: `an integer in 0..${Number.MAX_SAFE_INTEGER}`, schema: int(0, Number.MAX_SAFE_INTEGER) },
  { key: 'prefillChunk', flag: '--prefill-chunk <n>', description: 'prompt tokens prefilled per decode step (longer prompts are chunked)', default: '64', expect: `an integer in 1..${MAX_INT}`, schema: int(1, MAX_INT) },
  { key: 'maxAdapters', flag: '--max-adapters <n>', description: 'resident adapter versions before idle ones are evicted', default: '32', expect: `an integer in 1..${MAX_INT}`, schema: int(1, MAX_INT) },
  { key: 'preload', flag: '--preload <adapters>', description: 'adapters to load at start: name[@version][,...]', default: '', expect: 'a comma-separated list of adapter names, each optionally @version ("chat,summarize@3")', schema: adapterRefs },
  { key: 'adapterRescanMs', flag: '--adapter-rescan-ms <ms>', description: 'period of the adapter store rescan backing up fs.watch, milliseconds (0 = off)', default: '2000', expect: `an integer in 0..${MAX_INT}`, schema: int(0, MAX_INT) },
  { key: 'graceMs', flag: '--grace-ms <ms>', description: 'shutdown grace period, milliseconds', default: '10000', expect: `an integer in 0..${MAX_INT}`, schema: int(0, MAX_INT) },
];

/** `maxNewTokens` -> `--max-new-tokens`. */
function flagName(key: Key): string {
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** `maxNewTokens` -> `GENTUNE_MAX_NEW_TOKENS`. */
export function envName(key: string): string {
  return `GENTUNE_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

/** Adds every server flag to `cmd` (no commander defaults: unset flags fall back to the environment). */
export function addConfigOptions(cmd: Command): Command {
  for (const s of SETTINGS) {
    cmd.addOption(new Option(s.flag, `${s.description} (default: ${s.default}; env ${envName(s.key)})`));
  }
  return cmd;
}

/**
 * Resolves the configuration from parsed commander options (flag values as
 * strings, `true` for a bare boolean flag), then `env`, then defaults.
 * @throws InvalidArgument naming the flag and the offending value.
 */
export function resolveConfig(
  opts: Record<string, unknown>,
  env: Record<string, string | undefined> = process.env,
): GentuneConfig {
  const values = new Map<Key, string | number | boolean | AdapterRef[]>();
  for (const s of SETTINGS) {
    const fromFlag = opts[s.key];
    const fromEnv = env[envName(s.key)];
    let raw: string;
    let source = '';
    if (fromFlag !== undefined) raw = fromFlag === true ? 'true' : String(fromFlag);
    else if (fromEnv !== undefined && fromEnv !== '') {
      raw = fromEnv;
      source = ` (from ${envName(s.key)})`;
    } else raw = s.default;
    const parsed = s.schema.safeParse(raw);
    if (!parsed.success) {
      throw new InvalidArgument(`\`${flagName(s.key)}\` must be ${s.expect}, got ${JSON.stringify(raw)}${source}`);
    }
    values.set(s.key, parsed.data);
  }
  const get = <T>(key: Key) => values.get(key) as T;
  return {
    host: get('host'),
    port: get('port'),
    metricsPort: get('metricsPort'),
    dataDir: get('dataDir'),
    model: get('model'),
    backend: get('backend'),
    logLevel: get('logLevel'),
    logPrompts: get('logPrompts'),
    limits: {
      maxConcurrentStreams: get('maxConcurrentStreams'),
      maxPromptTokens: get('maxPromptTokens'),
      maxNewTokens: get('maxNewTokens'),
      maxUploadBytes: get('maxUploadBytes'),
      maxBatchSize: get('maxBatchSize'),
      maxQueue: get('maxQueue'),
      prefillChunk: get('prefillChunk'),
    },
    adapterMemory: get('adapterMemory'),
    maxAdapters: get('maxAdapters'),
    preload: get('preload'),
    adapterRescanMs: get('adapterRescanMs'),
    graceMs: get('graceMs'),
  };
}

/** The defaults, ignoring the environment (for tests and embedding). */
export function defaultConfig(): GentuneConfig {
  return resolveConfig({}, {});
}

/** Default server address of the client CLI: GENTUNE_ADDR, else 127.0.0.1:50051. */
export function defaultClientAddress(env: Record<string, string | undefined> = process.env): string {
  return env.GENTUNE_ADDR || '127.0.0.1:50051';
}
