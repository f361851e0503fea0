/**
 * The domain interface the gRPC server calls. Plain TypeScript types, no
 * protobuf: src/server decodes and validates requests into these, calls the
 * engine, and encodes what comes back. The shapes mirror proto/gentune/v1 so
 * handlers stay thin; names are camelCase, times are epoch milliseconds.
 *
 * Contract for implementations:
 * - Throw the typed errors of src/common/errors.ts (InvalidArgument, NotFound,
 *   FailedPrecondition, ResourceExhausted, Unavailable, ...); anything else
 *   becomes INTERNAL "internal error" and is logged.
 * - Requests arrive validated: ranges, names and shapes are checked by the
 *   server (see src/server/validate.ts). The engine still checks what only it
 *   knows: prompt length after tokenization, prompt + max_new_tokens <=
 *   n_positions, token ids < vocab_size, existence of adapters / datasets /
 *   jobs, max_seq_len <= n_positions.
 * - An aborted `signal` means the client went away, the deadline passed, or
 *   the server is shutting down (`signal.reason` is a GentuneError saying
 *   which). Stop at the next step boundary and free what the call holds.
 */

/** Why a generation ended (proto FinishReason). */
export type FinishReason = 'length' | 'eos' | 'stop_sequence' | 'cancelled';

/** An adapter reference: a name and an optional version (latest when absent). */
export interface AdapterRef {
  /** 1..64 characters of [A-Za-z0-9._-]. */
  name: string;
  /** Version number >= 1; undefined = latest. */
  version?: number;
}

/**
 * Sampling settings with the server's defaults already applied, except `seed`
 * (undefined = random).
 */
export interface SamplingParams {
  /**
   * Tokens to generate at most, 1..config.limits.maxNewTokens. The prompt plus
   * this must fit in the context (n_positions): the engine does not shorten
   * it, it rejects the request with InvalidArgument naming `max_new_tokens`.
   */
  maxNewTokens: number;
  /** Softmax temperature, 0..100; 0 = greedy. */
  temperature: number;
  /** Top-k filter, 0 = off. */
  topK: number;
  /** Nucleus filter, (0, 1]; 1 = off. */
  topP: number;
  /** Repetition penalty, (0, 10]; 1 = off. */
  repetitionPenalty: number;
  /** Sampler seed, 0..2^53-1; undefined = random. */
  seed?: number;
  /** Stop sequences (at most 4, 1..64 characters each); not included in the output. */
  stop: string[];
}

/** Input of {@link Engine.generate}. */
export interface GenerateParams {
  /** Id for logs (from the x-request-id header, or generated). */
  requestId: string;
  /** Prompt text, or token ids in the base vocabulary (at most limits.maxPromptTokens). */
  prompt: string | number[];
  /** Adapter to use; null = the bare base model. */
  adapter: AdapterRef | null;
  sampling: SamplingParams;
  /** Return the log probability of each generated token. */
  logprobs: boolean;
  /** Number of alternatives per position, 0..20 (0 unless logprobs). */
  topLogprobs: number;
}

/** A candidate token at one position. */
export interface TopLogprob {
  tokenId: number;
  token: string;
  /** Natural log probability, <= 0. */
  logprob: number;
}

/** Log probability of one generated token. */
export interface TokenLogprob extends TopLogprob {
  /** Most likely alternatives, most likely first; empty unless topLogprobs > 0. */
  topLogprobs: TopLogprob[];
}

/** Counts and timings of a finished generation. */
export interface Usage {
  promptTokens: number;
  generatedTokens: number;
  /** Arrival to first generated token, in milliseconds. */
  timeToFirstTokenMs: number;
  /** Arrival to last generated token, in milliseconds. */
  totalMs: number;
  /** Arrival to joining the running batch, in milliseconds. */
  queueMs: number;
}

/** How a generation ended; carried by the last chunk only. */
export interface GenerateFinish {
  reason: FinishReason;
  usage: Usage;
  /** The adapter that served it as "name@version"; '' for the base model. */
  adapter: string;
}

/**
 * One step of output. Every chunk but the last has no `finish`; the last has
 * one (its text / tokens may be empty). Concatenated `text` is the output.
 */
export interface GenerateChunk {
  /**
   * New text. Held back until settled: bytes of a UTF-8 character split
   * across tokens, and text that may be the start of a stop sequence.
   */
  text: string;
  /** Token ids generated since the previous chunk. */
  tokenIds: number[];
  /** One entry per token id when logprobs was requested. */
  logprobs?: TokenLogprob[];
  finish?: GenerateFinish;
}

/** One turn of a chat example. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** One SFT example: the three JSONL shapes. */
export type Example =
  | { prompt: string; completion: string }
  | { messages: ChatMessage[] }
  | { text: string };

/** Where examples come from: an uploaded dataset or inline examples. */
export type DataSource = { datasetId: string } | { examples: Example[] };

/** Evaluate metric names (proto Metric, camelCase). */
export type MetricName =
  | 'loss'
  | 'perplexity'
  | 'tokenAccuracy'
  | 'bleu'
  | 'rouge1'
  | 'rouge2'
  | 'rougeL'
  | 'exactMatch';

/** Metric values; only the requested ones are set. */
export type MetricValues = Partial<Record<MetricName, number>>;

/** Input of {@link Engine.evaluate}. */
export interface EvaluateParams {
  requestId: string;
  data: DataSource;
  /** Evaluate the bare base model first (always true when `adapters` is empty). */
  includeBaseModel: boolean;
  /** Adapters to compare, in order, no duplicates, at most 16. */
  adapters: AdapterRef[];
  /** At least one, no duplicates (defaults applied by the server). */
  metrics: MetricName[];
  /** Sampling for generation metrics (defaults: greedy, 64 new tokens). */
  generation: SamplingParams;
  /** Evaluate only the first N examples; undefined = all. */
  maxExamples?: number;
  /** Truncate sequences to this many tokens; undefined = n_positions. */
  maxSeqLen?: number;
  /** Return per-example rows. */
  includeExamples: boolean;
}

/** Scores of one example under one model. */
export interface ExampleResult {
  /** 0-based index in the dataset. */
  index: number;
  /** Generated text, when a generation metric was requested; else ''. */
  generated: string;
  metrics: MetricValues;
}

/** Scores of one model. */
export interface ModelEvaluation {
  /** "name@version"; '' for the base model. */
  adapter: string;
  metrics: MetricValues;
  /** Per-example rows when includeExamples; else empty. */
  examples: ExampleResult[];
  /** Seconds spent on this model. */
  evalSeconds: number;
}

/** Output of {@link Engine.evaluate}. */
export interface EvaluateResult {
  /** Base model first when included, then adapters in request order. */
  results: ModelEvaluation[];
  numExamples: number;
  /** Target tokens scored per model. */
  numTokens: number;
}

/** LoRA settings (PEFT names); undefined fields take defaults r=8, alpha=16, dropout=0.05, ["c_attn"]. */
export interface LoraMethod {
  kind: 'lora';
  r?: number;
  loraAlpha?: number;
  loraDropout?: number;
  /** Subset of "c_attn", "c_proj", "attn.c_proj", "c_fc", "mlp.c_proj"; empty = default. */
  targetModules: string[];
}

/** Train the top `numLayers` blocks (1..n_layer) and the final layer norm. */
export interface LastLayersMethod {
  kind: 'last_layers';
  numLayers: number;
}

export type FineTuneMethod = LoraMethod | LastLayersMethod;

export type LrScheduler = 'cosine' | 'linear' | 'constant';

/** Training hyperparameters; undefined = the default documented in fine_tune.proto. */
export interface Hyperparameters {
  epochs?: number;
  maxSteps?: number;
  batchSize?: number;
  gradientAccumulationSteps?: number;
  learningRate?: number;
  warmupSteps?: number;
  lrScheduler?: LrScheduler;
  weightDecay?: number;
  /** Tokens; the engine checks <= n_positions. */
  maxSeqLen?: number;
  evalIntervalSteps?: number;
  earlyStoppingPatience?: number;
  seed?: number;
  completionOnlyLoss?: boolean;
  /** Fraction held out, 0..0.5. */
  validationSplit?: number;
  maxGradNorm?: number;
}

/** A validated fine-tune request (also stored with the job and echoed back). */
export interface FineTuneSpec {
  /** '' = the served model; otherwise must equal it (FailedPrecondition). */
  baseModel: string;
  /** Output adapter name. */
  adapter: string;
  training: DataSource;
  /** undefined = use hyperparameters.validationSplit. */
  validationDatasetId?: string;
  method: FineTuneMethod;
  hyperparameters: Hyperparameters;
}

export type JobState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

/** Metrics of a finished job. */
export interface FinalMetrics {
  trainLoss: number;
  evalLoss?: number;
  perplexity?: number;
  steps: number;
  tokens: number;
  trainSeconds: number;
}

/** The payload of a job event (proto FineTuneEvent's oneof). */
export type JobEventBody =
  | { type: 'queued'; position: number }
  | {
      type: 'started';
      totalSteps: number;
      numTrainExamples: number;
      numValidationExamples: number;
      trainableParameters: number;
      /** Set when the job resumed from its checkpoint after a restart: the steps already done. */
      resumedFromStep?: number;
    }
  | {
      type: 'progress';
      step: number;
      totalSteps: number;
      /** Fractional epochs done. */
      epoch: number;
      loss: number;
      learningRate: number;
      gradNorm: number;
      tokensPerSecond: number;
      etaSeconds: number;
    }
  | { type: 'evaluation'; step: number; evalLoss: number; perplexity: number }
  | { type: 'checkpoint'; step: number }
  | { type: 'succeeded'; adapter: string; version: number; metrics: FinalMetrics }
  | { type: 'failed'; reason: string }
  | { type: 'cancelled' };

/** One entry of a job's durable event log. */
export type JobEvent = {
  jobId: string;
  /** Position in the log, from 0. */
  sequence: number;
  /** Epoch milliseconds. */
  timeMs: number;
} & JobEventBody;

/** A fine-tune job's current state. */
export interface JobInfo {
  id: string;
  state: JobState;
  spec: FineTuneSpec;
  createdAtMs: number;
  startedAtMs?: number;
  finishedAtMs?: number;
  step: number;
  totalSteps: number;
  /** Loss of the latest step. */
  loss?: number;
  /** Published version, when succeeded. */
  adapterVersion?: number;
  /** Failure reason (safe to show), when failed. */
  error?: string;
  metrics?: FinalMetrics;
}

/** Filter of {@link Engine.listJobs}. */
export interface JobFilter {
  state?: JobState;
  adapter?: string;
  /** 1..1000. */
  limit: number;
}

/** Line schema of a JSONL dataset. */
export type DatasetFormat = 'prompt_completion' | 'chat' | 'text';

/** First message of an upload, validated. */
export interface DatasetUploadMeta {
  /** 1..128 characters, no '/', '\' or '..'. */
  name: string;
  /** 'auto' = detect from the first line; every later line must match it. */
  format: DatasetFormat | 'auto';
}

/** A stored dataset. */
export interface DatasetInfo {
  id: string;
  name: string;
  format: DatasetFormat;
  numExamples: number;
  sizeBytes: number;
  /** Lowercase hex. */
  sha256: string;
  createdAtMs: number;
}

export type AdapterResidency = 'stored' | 'loaded' | 'pinned';

/** One published version of an adapter. */
export interface AdapterVersionInfo {
  version: number;
  baseModel: string;
  method: 'lora' | 'last_layers';
  /** LoRA rank; 0 for last_layers. */
  r: number;
  /** LoRA alpha; 0 for last_layers. */
  loraAlpha: number;
  targetModules: string[];
  sizeBytes: number;
  residency: AdapterResidency;
  createdAtMs: number;
  lastUsedAtMs?: number;
  /** Producing job; undefined if imported. */
  jobId?: string;
  /**
   * Requests served by this version since the server started: Generate
   * requests that took it (counted when the request takes it, before its first token)
   * plus Evaluate calls that scored it (one per call). LoadAdapter does not count.
   */
  requestsServed: number;
}

/** A named adapter with all its versions. */
export interface AdapterInfo {
  name: string;
  latestVersion: number;
  /** Oldest first. */
  versions: AdapterVersionInfo[];
}

/** The resident base model. */
export interface ModelInfo {
  name: string;
  nLayer: number;
  nHead: number;
  nEmbd: number;
  /** Context length, tokens. */
  nPositions: number;
  vocabSize: number;
  numParameters: number;
  eosTokenId: number;
}

/** Server limits (from config). */
export interface Limits {
  maxConcurrentStreams: number;
  /** Tokens. */
  maxPromptTokens: number;
  /** Tokens. */
  maxNewTokens: number;
  /** Bytes. */
  maxUploadBytes: number;
  maxBatchSize: number;
  maxQueue: number;
  /** Fine-tune jobs trained at once; later ones wait queued. */
  maxConcurrentJobs: number;
  /** Examples in one uploaded dataset or one request's inline examples. */
  maxDatasetExamples: number;
  /** Fine-tune jobs waiting queued. */
  maxQueuedJobs: number;
  /** One gRPC message, bytes. */
  maxMessageBytes: number;
}

/** The adapter the webgpu backend runs on (GPUAdapterInfo). */
export interface GpuAdapterInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** A software rasteriser (lavapipe, SwiftShader), not a GPU. */
  software: boolean;
}

/** Memory TensorFlow.js holds on the serving thread's backend (tf.memory()). */
export interface DeviceMemoryInfo {
  numTensors: number;
  numDataBuffers: number;
  /** Bytes of all live tensors (every backend). */
  numBytes: number;
  /** webgpu only: bytes of GPU buffers holding live tensors. */
  numBytesInGPU?: number;
  /** webgpu only: bytes of GPU buffers allocated, live or pooled for reuse. */
  numBytesAllocatedInGPU?: number;
  /** TensorFlow.js cannot count bytes exactly. */
  unreliable?: boolean;
}

/** What GetServerInfo reports. */
export interface ServerInfo {
  /** gentune semver. */
  version: string;
  /** Zeros until the model is loaded. */
  model: ModelInfo;
  /** 'tensorflow' | 'webgpu' | 'wasm' | 'cpu' (or '' before it is chosen). */
  backend: string;
  /** One line describing the backend's device ("wasm simd, 1 thread(s)", "nvidia hopper: NVIDIA H200, WebGPU via Dawn"). */
  device: string;
  /** webgpu only. */
  gpuAdapter?: GpuAdapterInfo;
  /** Memory in use on the device, read on the thread holding the model (at most about a second old). */
  deviceMemory: DeviceMemoryInfo;
  limits: Limits;
  ready: boolean;
  startedAtMs: number;
}

/** The serving / training engine behind ModelService. */
export interface Engine {
  /** Model, backend, limits and version; cheap, synchronous. */
  info(): ServerInfo;
  /** True once the base model is loaded and requests can be served (health SERVING). */
  isReady(): boolean;

  /**
   * Streams the generation of one prompt; the last chunk carries `finish`.
   * When `signal` aborts, either end with finish.reason 'cancelled' or throw.
   * Throws ResourceExhausted when the queue is full, NotFound for an unknown adapter.
   */
  generate(req: GenerateParams, signal: AbortSignal): AsyncIterable<GenerateChunk>;

  /** Scores the base model and/or adapters on a dataset. */
  evaluate(req: EvaluateParams, signal: AbortSignal): Promise<EvaluateResult>;

  /** Persists and queues a job; resolves with it in state 'queued'. */
  submitFineTune(spec: FineTuneSpec): Promise<JobInfo>;
  /**
   * Replays the job's event log from `fromSequence`, then follows it live;
   * ends after the terminal event or when `signal` aborts. NotFound if unknown.
   */
  watchJob(jobId: string, fromSequence: number, signal: AbortSignal): AsyncIterable<JobEvent>;
  /** NotFound if unknown. */
  getJob(jobId: string): Promise<JobInfo>;
  /** Newest first. */
  listJobs(filter: JobFilter): Promise<JobInfo[]>;
  /** Resolves with the job in state 'cancelled'; FailedPrecondition if already finished. */
  cancelJob(jobId: string): Promise<JobInfo>;

  /**
   * Stores a JSONL dataset, validating every line (InvalidArgument naming the
   * line). Chunks are raw bytes, split anywhere; the server has already
   * enforced limits.maxUploadBytes. Nothing is stored if it throws.
   */
  uploadDataset(
    meta: DatasetUploadMeta,
    chunks: AsyncIterable<Uint8Array>,
    signal: AbortSignal,
  ): Promise<DatasetInfo>;
  /** Newest first. */
  listDatasets(): Promise<DatasetInfo[]>;
  /** NotFound if unknown; FailedPrecondition while a job uses it. */
  deleteDataset(datasetId: string): Promise<void>;

  /** Sorted by name. */
  listAdapters(): Promise<AdapterInfo[]>;
  /** Loads (and pins, if asked) a version; idempotent. */
  loadAdapter(ref: AdapterRef, pin: boolean): Promise<AdapterInfo>;
  /** Unpins and frees a version (every version when ref.version is undefined); idempotent. */
  unloadAdapter(ref: AdapterRef): Promise<AdapterInfo>;
  /** Deletes a version, or every version when ref.version is undefined. */
  deleteAdapter(ref: AdapterRef): Promise<void>;

  /**
   * Stops accepting work, lets running work finish within `graceMs`
   * milliseconds, then cancels it, and frees resources. The server calls it
   * after its own calls ended. A fine-tune job still running saves its
   * checkpoint at its next step boundary and stops without a terminal event:
   * the next start on the same data directory resumes it from there. Queued
   * jobs stay queued and run after the restart.
   */
  drain(graceMs: number): Promise<void>;
}
