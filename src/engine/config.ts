/**
 * Server configuration, read in ONE place: command-line flags, else GENTUNE_*
 * environment variables, else defaults; every value validated with zod. Nothing
 * else in the server reads process.env: the resulting {@link GentuneConfig} is
 * passed down. (The client CLI, another program, reads its own few variables
 * in src/cli/client-env.ts.)
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
import { isStoreName } from '../common/store-name.js';
import type { AdapterRef } from './engine-api.js';

export type BackendName = 'auto' | 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
/** What a replica does: `serve` answers requests and runs no fine-tune jobs; `train` runs jobs too; `all` both (the default). */
export type ReplicaRole = 'serve' | 'train' | 'all';

/** Server limits; requests beyond them fail with INVALID_ARGUMENT or RESOURCE_EXHAUSTED. */
export interface LimitsConfig {
  /** Concurrent streaming calls (Generate, FineTune, WatchFineTune), all clients together. */
  maxConcurrentStreams: number;
  /** Prompt length, in tokens. */
  maxPromptTokens: number;
  /**
   * Prompt size, in UTF-8 bytes, checked before the prompt is tokenized
   * (0 = derived: the most bytes a prompt of maxPromptTokens tokens can have,
   * prompt-bytes.ts). A prompt over the smaller of the two is refused unread.
   */
  maxPromptBytes: number;
  /** Ceiling (and the cap of the default) of max_new_tokens, in tokens. */
  maxNewTokens: number;
  /** Size of one dataset upload, in bytes. */
  maxUploadBytes: number;
  /** Sequences decoded together per step; also the fine-tune batch_size ceiling. */
  maxBatchSize: number;
  /** Generate requests waiting for a batch slot. */
  maxQueue: number;
  /** Examples (JSONL lines) in one uploaded dataset, and inline examples in one request. */
  maxDatasetExamples: number;
  /** Fine-tune jobs waiting in state 'queued' for a training slot (running jobs not counted). */
  maxQueuedJobs: number;
  /** Fine-tune jobs trained at once, each in a worker of its own; later ones wait queued. */
  maxConcurrentJobs: number;
  /**
   * Size of one gRPC message, received or sent, in bytes (grpc-js's
   * grpc.max_receive_message_length / grpc.max_send_message_length).
   */
  maxMessageBytes: number;
  /**
   * Prompt tokens (columns) a joining prefill runs per decode step: longer
   * prompts are prefilled in chunks interleaved with the running batch's
   * decode steps, so they cannot stall running streams for long.
   */
  prefillChunk: number;
}

/**
 * Access control and transport security (src/server/auth.ts, tls.ts). Auth is
 * on when any token is configured; TLS when `tlsCert` and `tlsKey` are set;
 * mutual TLS when `tlsClientCa` is set too. Empty strings mean "not set".
 */
export interface SecurityConfig {
  /** Token file (YAML or JSON, see README "Security"); read when the server starts. */
  tokenFile: string;
  /** Admin bearer tokens from GENTUNE_ADMIN_TOKEN (comma-separated); environment only, never a flag (flags show in `ps`). */
  adminTokens: string[];
  /** User bearer tokens from GENTUNE_USER_TOKEN (comma-separated); environment only. */
  userTokens: string[];
  /** Server certificate chain, PEM file. */
  tlsCert: string;
  /** Server private key, PEM file. */
  tlsKey: string;
  /** CA bundle (PEM file) that client certificates must chain to; set = mutual TLS. */
  tlsClientCa: string;
}

/** Everything the server needs to start. */
export interface GentuneConfig {
  /** Interface the gRPC server binds. */
  host: string;
  /** gRPC port; 0 picks a free one. */
  port: number;
  /** Port of the HTTP /metrics, /healthz, /readyz endpoint; 0 picks a free one. */
  metricsPort: number;
  /** Port of the OpenAI-compatible HTTP API (src/http); 0 = off (unlike `port`: an API nobody asked for stays closed). */
  httpPort: number;
  /** Datasets, adapters and job logs live here. */
  dataDir: string;
  /** Base model folder in Hugging Face layout (GPT-2 or Llama family). */
  model: string;
  backend: BackendName;
  /** Options for Dawn's `create()` on the webgpu backend, e.g. `backend=vulkan`, `adapter=H200` (`--dawn-options`, comma-separated); none by default. */
  dawnOptions: string[];
  /** Threads of the wasm backend in the serving worker (`auto`: by model size, see wasm-thread-count.ts); ignored by other backends. */
  wasmThreads: number | 'auto';
  logLevel: LogLevel;
  /** Log prompt and output text (debug only: they may hold user data). */
  logPrompts: boolean;
  /**
   * Run one short generation before reporting ready (`--warmup`), so the
   * first request after /readyz turns 200 does not pay the process's
   * first-generation costs (bench/first-request.ts).
   */
  warmup: boolean;
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
  /**
   * A connection with no call in flight for this long is closed, in
   * milliseconds: gRPC with a GOAWAY (grpc.max_connection_idle_ms; clients
   * reconnect when they next call), HTTP as its keep-alive timeout.
   */
  idleConnectionMs: number;
  /**
   * Training time between two checkpoints of a running fine-tune job, in
   * milliseconds, checked at step boundaries (0: after every step). A job
   * also checkpoints when the server drains; after a restart it resumes
   * from its last checkpoint.
   */
  checkpointIntervalMs: number;
  /**
   * `serve`: take no fine-tune jobs (they are accepted, listed and watched
   * here, and run by a `train` or `all` replica on the same data directory);
   * `train` and `all`: take jobs. `train` is for a Deployment that no client
   * traffic is routed to, so that serving replicas keep their latency.
   */
  role: ReplicaRole;
  /**
   * Lifetime of a fine-tune job's lease past its last renewal, in
   * milliseconds: a job whose replica was killed is taken over by another
   * about this long after (job-lease.ts).
   */
  leaseTtlMs: number;
  /** Period of a held lease's renewal, in milliseconds; under a third of `leaseTtlMs`. */
  leaseRenewMs: number;
  /**
   * Period of the look at the shared store for what other replicas wrote
   * (jobs, their events, datasets) and for jobs to take, in milliseconds;
   * it bounds how late one replica sees another's writes.
   */
  storePollMs: number;
  security: SecurityConfig;
}

type Key =
  | 'host' | 'port' | 'metricsPort' | 'httpPort' | 'dataDir' | 'model' | 'backend' | 'dawnOptions' | 'wasmThreads' | 'logLevel' | 'logPrompts' | 'warmup'
  | keyof LimitsConfig | 'adapterMemory' | 'maxAdapters' | 'preload' | 'adapterRescanMs' | 'graceMs' | 'idleConnectionMs' | 'checkpointIntervalMs'
  | 'role' | 'leaseTtlMs' | 'leaseRenewMs' | 'storePollMs'
  | 'tokenFile' | 'tlsCert' | 'tlsKey' | 'tlsClientCa';

interface Setting {
  key: Key;
  /** Commander flag spec. */
  flag: string;
  description: string;
  default: string;
  /** Human description of valid values, used in error messages. */
  expect: string;
  schema: z.ZodType<string | number | boolean | string[] | AdapterRef[], string>;
}

const int = (min: number, max: number) =>
  z.string().trim().regex(/^\d+$/).transform(Number).pipe(z.number().int().min(min).max(max));
const choice = <T extends string>(values: readonly [T, ...T[]]) => z.string().trim().pipe(z.enum(values));
const text = z.string().trim().min(1);
/** A file path; '' = not set. */
const optionalPath = z.string().trim();
const bool = z
  .string()
  .trim()
  .toLowerCase()
  .pipe(z.enum(['true', 'false', '1', '0']))
  .transform((v) => v === 'true' || v === '1');

/** "name[@version][,...]" -> adapter refs ('' = none). */
const adapterRefs = z.string().transform((value, ctx): AdapterRef[] => {
  const refs: AdapterRef[] = [];
  for (const item of value.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const m = /^(.+?)(?:@([1-9]\d{0,8}))?$/.exec(item);
    if (!m || !isStoreName(m[1])) {
      ctx.addIssue({ code: 'custom', message: item });
      return z.NEVER;
    }
    refs.push(m[2] === undefined ? { name: m[1] } : { name: m[1], version: Number(m[2]) });
  }
  return refs;
});

/** "a,b" -> ['a', 'b'] ('' = none). */
const commaList = z.string().transform((value) => value.split(',').map((s) => s.trim()).filter((s) => s !== ''));

const ROLES = ['serve', 'train', 'all'] as const;

const BACKENDS = ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const MAX_INT = 2 ** 31 - 1;

const SETTINGS: Setting[] = [
  { key: 'host', flag: '--host <host>', description: 'interface to bind', default: '127.0.0.1', expect: 'a host name or address', schema: text },
  { key: 'port', flag: '--port <port>', description: 'gRPC port (0 = any free port)', default: '50051', expect: 'an integer in 0..65535', schema: int(0, 65535) },
  { key: 'metricsPort', flag: '--metrics-port <port>', description: 'HTTP metrics/health port', default: '9464', expect: 'an integer in 0..65535', schema: int(0, 65535) },
  { key: 'httpPort', flag: '--http-port <port>', description: 'OpenAI-compatible HTTP API port (0 = off)', default: '8000', expect: 'an integer in 0..65535', schema: int(0, 65535) },
  { key: 'dataDir', flag: '--data-dir <dir>', description: 'datasets, adapters and job logs', default: './data', expect: 'a directory path', schema: text },
  { key: 'model', flag: '--model <dir>', description: 'base model folder in Hugging Face layout (GPT-2 or Llama family)', default: 'models/gentune-mini', expect: 'a directory path', schema: text },
  { key: 'backend', flag: '--backend <name>', description: `TensorFlow.js backend: ${BACKENDS.join('|')}`, default: 'auto', expect: `one of ${BACKENDS.join(', ')}`, schema: choice(BACKENDS) },
  { key: 'dawnOptions', flag: '--dawn-options <list>', description: 'webgpu only: Dawn create() options, comma-separated (e.g. backend=vulkan,adapter=H200)', default: '', expect: 'a comma-separated list of Dawn options', schema: commaList },
  { key: 'wasmThreads', flag: '--wasm-threads <n>', description: 'wasm backend threads in the serving worker (auto: 1 below 20M parameters, else up to 4)', default: 'auto', expect: 'auto or an integer in 1..64', schema: z.union([z.string().trim().pipe(z.literal('auto')), int(1, 64)]) },
  { key: 'logLevel', flag: '--log-level <level>', description: `log level: ${LOG_LEVELS.join('|')}`, default: 'info', expect: `one of ${LOG_LEVELS.join(', ')}`, schema: choice(LOG_LEVELS) },
  { key: 'logPrompts', flag: '--log-prompts [bool]', description: 'log prompt and output text (debug only)', default: 'false', expect: 'true or false', schema: bool },
  { key: 'warmup', flag: '--warmup [bool]', description: 'generate a few tokens before reporting ready, so the first request does not pay the first-generation costs', default: 'true', expect: 'true or false', schema: bool },
  { key: 'maxConcurrentStreams', flag: '--max-concurrent-streams <n>', description: 'concurrent streaming calls', default: '64', expect: `an integer in 1..${MAX_INT}`, schema: int(1, MAX_INT) },
  { key: 'maxPromptTokens', flag: '--max-prompt-tokens <n>', description: 'prompt length, tokens', default: '1024', expect: `an integer in 1..${MAX_INT}`, schema: int(1, MAX_INT) },
  { key: 'maxPromptBytes', flag: '--max-prompt-bytes <n>', description: 'prompt size, UTF-8 bytes, checked before tokenizing (0 = the most a prompt of --max-prompt-tokens tokens can have)', default: '0', expect: `an integer in 0..${MAX_INT}`, schema: int(0, MAX_INT) },
  { key: 'maxNewTokens', flag: '--max-new-tokens <n>', description: 'max_new_tokens ceiling, tokens', default: '256', expect: `an integer in 1..${MAX_INT}`, schema: int(1, MAX_INT) },
  { key: 'maxUploadBytes', flag: '--max-upload-bytes <n>', description: 'dataset upload size, bytes (each JSONL line at most 1048576 bytes: max_line_bytes, fixed)', default: String(64 * 1024 * 1024), expect: `an integer in 1..${Number.MAX_SAFE_INTEGER}`, schema: int(1, Number.MAX_SAFE_INTEGER) },
  { key: 'maxBatchSize', flag: '--max-batch-size <n>', description: 'sequences decoded per step', default: '16', expect: 'an integer in 1..4096', schema: int(1, 4096) },
  { key: 'maxQueue', flag: '--max-queue <n>', description: 'Generate requests waiting for a slot', default: '256', expect: `an integer in 0..${MAX_INT}`, schema: int(0, MAX_INT) },
  { key: 'maxDatasetExamples', flag: '--max-dataset-examples <n>', description: 'examples per uploaded dataset (and inline examples per request)', default: '1000000', expect: `an integer in 1..${MAX_INT}`, schema: int(1, MAX_INT) },
  { key: 'maxQueuedJobs', flag: '--max-queued-jobs <n>', description: 'fine-tune jobs waiting for a training slot', default: '100', expect: `an integer in 0..${MAX_INT}`, schema: int(0, MAX_INT) },
  { key: 'maxConcurrentJobs', flag: '--max-concurrent-jobs <n>', description: 'fine-tune jobs trained at once (others wait queued)', default: '1', expect: 'an integer in 1..64', schema: int(1, 64) },
  { key: 'maxMessageBytes', flag: '--max-message-bytes <n>', description: 'size of one gRPC message, received or sent, bytes (the client uploads datasets in 256 KiB messages)', default: String(16 * 1024 * 1024), expect: `an integer in 1024..${MAX_INT}`, schema: int(1024, MAX_INT) },
  { key: 'adapterMemory', flag: '--adapter-memory <bytes>', description: 'resident adapter memory before idle ones are evicted, bytes', default: String(512 * 1024 * 1024), expect: `an integer in 0..${Number.MAX_SAFE_INTEGER}`, schema: int(0, Number.MAX_SAFE_INTEGER) },
  { key: 'prefillChunk', flag: '--prefill-chunk <n>', description: 'prompt tokens prefilled per decode step (longer prompts are chunked)', default: '64', expect: `an integer in 1..${MAX_INT}`, schema: int(1, MAX_INT) },
  { key: 'maxAdapters', flag: '--max-adapters <n>', description: 'resident adapter versions before idle ones are evicted', default: '32', expect: `an integer in 1..${MAX_INT}`, schema: int(1, MAX_INT) },
  { key: 'preload', flag: '--preload <adapters>', description: 'adapters to load at start: name[@version][,...]', default: '', expect: 'a comma-separated list of adapter names, each optionally @version ("chat,summarize@3")', schema: adapterRefs },
  { key: 'adapterRescanMs', flag: '--adapter-rescan-ms <ms>', description: 'period of the adapter store rescan backing up fs.watch, milliseconds (0 = off)', default: '2000', expect: `an integer in 0..${MAX_INT}`, schema: int(0, MAX_INT) },
  { key: 'tokenFile', flag: '--token-file <file>', description: 'bearer tokens and their roles, YAML/JSON (enables auth)', default: '', expect: 'a file path', schema: optionalPath },
  { key: 'tlsCert', flag: '--tls-cert <file>', description: 'server certificate chain, PEM (enables TLS, with --tls-key)', default: '', expect: 'a file path', schema: optionalPath },
  { key: 'tlsKey', flag: '--tls-key <file>', description: 'server private key, PEM', default: '', expect: 'a file path', schema: optionalPath },
  { key: 'tlsClientCa', flag: '--tls-client-ca <file>', description: 'CA bundle, PEM: require client certificates signed by it (mutual TLS)', default: '', expect: 'a file path', schema: optionalPath },
  { key: 'graceMs', flag: '--grace-ms <ms>', description: 'shutdown grace period, milliseconds', default: '10000', expect: `an integer in 0..${MAX_INT}`, schema: int(0, MAX_INT) },
  { key: 'idleConnectionMs', flag: '--idle-connection-ms <ms>', description: 'close a gRPC or HTTP connection with no call in flight after this long, milliseconds', default: '60000', expect: `an integer in 1..${MAX_INT}`, schema: int(1, MAX_INT) },
  { key: 'role', flag: '--role <role>', description: `what this replica does: ${ROLES.join('|')} (serve: runs no fine-tune jobs)`, default: 'all', expect: `one of ${ROLES.join(', ')}`, schema: choice(ROLES) },
  { key: 'leaseTtlMs', flag: '--lease-ttl-ms <ms>', description: 'lifetime of a fine-tune job lease past its renewal, milliseconds (a killed replica\'s job is taken over after it)', default: '10000', expect: `an integer in 100..${MAX_INT}`, schema: int(100, MAX_INT) },
  { key: 'leaseRenewMs', flag: '--lease-renew-ms <ms>', description: 'renewal period of a held fine-tune job lease, milliseconds (under a third of --lease-ttl-ms)', default: '2000', expect: `an integer in 10..${MAX_INT}`, schema: int(10, MAX_INT) },
  { key: 'storePollMs', flag: '--store-poll-ms <ms>', description: 'period of the look at the shared store for other replicas\' jobs, events and datasets, milliseconds', default: '250', expect: `an integer in 10..${MAX_INT}`, schema: int(10, MAX_INT) },
  { key: 'checkpointIntervalMs', flag: '--checkpoint-interval-ms <ms>', description: 'training time between checkpoints of a fine-tune job, milliseconds (0 = every step)', default: '30000', expect: `an integer in 0..${MAX_INT}`, schema: int(0, MAX_INT) },
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
  const values = new Map<Key, string | number | boolean | string[] | AdapterRef[]>();
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
  const config: GentuneConfig = {
    host: get('host'),
    port: get('port'),
    metricsPort: get('metricsPort'),
    httpPort: get('httpPort'),
    dataDir: get('dataDir'),
    model: get('model'),
    backend: get('backend'),
    dawnOptions: get('dawnOptions'),
    wasmThreads: get('wasmThreads'),
    logLevel: get('logLevel'),
    logPrompts: get('logPrompts'),
    warmup: get('warmup'),
    limits: {
      maxConcurrentStreams: get('maxConcurrentStreams'),
      maxPromptTokens: get('maxPromptTokens'),
      maxPromptBytes: get('maxPromptBytes'),
      maxNewTokens: get('maxNewTokens'),
      maxUploadBytes: get('maxUploadBytes'),
      maxBatchSize: get('maxBatchSize'),
      maxQueue: get('maxQueue'),
      maxDatasetExamples: get('maxDatasetExamples'),
      maxQueuedJobs: get('maxQueuedJobs'),
      maxConcurrentJobs: get('maxConcurrentJobs'),
      maxMessageBytes: get('maxMessageBytes'),
      prefillChunk: get('prefillChunk'),
    },
    adapterMemory: get('adapterMemory'),
    maxAdapters: get('maxAdapters'),
    preload: get('preload'),
    adapterRescanMs: get('adapterRescanMs'),
    graceMs: get('graceMs'),
    idleConnectionMs: get('idleConnectionMs'),
    checkpointIntervalMs: get('checkpointIntervalMs'),
    role: get('role'),
    leaseTtlMs: get('leaseTtlMs'),
    leaseRenewMs: get('leaseRenewMs'),
    storePollMs: get('storePollMs'),
    security: resolveSecurity(get, env),
  };
  if (config.leaseRenewMs * 3 > config.leaseTtlMs) {
    throw new InvalidArgument(`\`--lease-renew-ms\` must be at most a third of \`--lease-ttl-ms\` ${config.leaseTtlMs}, got ${config.leaseRenewMs}`);
  }
  return config;
}

/** Printable ASCII without spaces (it travels in an HTTP/2 header), at least 16 characters. */
export const TOKEN_PATTERN = /^[\x21-\x7e]{16,4096}$/;

/** Env-only token lists; never quotes a token in an error. */
function tokensFromEnv(env: Record<string, string | undefined>, name: string): string[] {
  const tokens = (env[name] ?? '').split(',').map((t) => t.trim()).filter((t) => t !== '');
  tokens.forEach((t, i) => {
    if (!TOKEN_PATTERN.test(t)) {
      throw new InvalidArgument(`\`${name}\` token ${i + 1} must be 16..4096 printable ASCII characters without spaces, got ${t.length} characters`);
    }
  });
  return tokens;
}

function resolveSecurity(get: <T>(key: Key) => T, env: Record<string, string | undefined>): SecurityConfig {
  const security: SecurityConfig = {
    tokenFile: get('tokenFile'),
    adminTokens: tokensFromEnv(env, 'GENTUNE_ADMIN_TOKEN'),
    userTokens: tokensFromEnv(env, 'GENTUNE_USER_TOKEN'),
    tlsCert: get('tlsCert'),
    tlsKey: get('tlsKey'),
    tlsClientCa: get('tlsClientCa'),
  };
  if ((security.tlsCert === '') !== (security.tlsKey === '')) {
    throw new InvalidArgument('`--tls-cert` and `--tls-key` go together: set both or neither');
  }
  if (security.tlsClientCa !== '' && security.tlsCert === '') {
    throw new InvalidArgument('`--tls-client-ca` (mutual TLS) needs `--tls-cert` and `--tls-key`');
  }
  return security;
}

/** The defaults, ignoring the environment (for tests and embedding). */
export function defaultConfig(): GentuneConfig {
  return resolveConfig({}, {});
}
