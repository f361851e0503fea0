/**
 * The engine itself, on the thread that builds it: one base model resident on
 * the backend, the dataset, adapter and job stores under config.dataDir, the
 * decode loop serving Generate, evaluation, and the fine-tune runner. This
 * file wires them together; each concern lives in its own module.
 *
 * The serving worker (worker/engine-worker.ts) builds it with each fine-tune job in
 * a worker of its own; createEngine with `threads: false` builds it on the
 * caller's thread, jobs included.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { Unavailable } from '../common/errors.js';
import { type BackendInfo, type BackendName, deviceMemory, initBackend } from '../model/backend.js';
import { kvCacheMemory } from '../model/kernels/kv-arena.js';
import { autoWasmThreads } from '../model/wasm-thread-count.js';
import { readModelConfig } from '../model/checkpoint/model-files.js';
import { GptModel } from '../model/gpt-model.js';
import { AdapterRegistry, DEFAULT_ADAPTER_BUDGET_BYTES } from './adapter-registry.js';
import { AdapterAliases } from './adapter-aliases.js';
import { AdapterStore } from './adapter-store.js';
import type { GentuneConfig } from './config.js';
import type { EngineOptions } from './engine-options.js';
import { DatasetStore } from './dataset-store.js';
import type {
  AdapterInfo,
  AdapterRef,
  DatasetInfo,
  DatasetUploadMeta,
  Engine,
  EvaluateEvent,
  EvaluateParams,
  EvaluateResult,
  FineTuneSpec,
  GenerateChunk,
  GenerateParams,
  JobEvent,
  JobFilter,
  JobInfo,
  JobState,
  Limits,
  ServerInfo,
} from './engine-api.js';
import { noMetrics } from './engine-metrics.js';
import { EvaluationService } from './evaluation-service.js';
import { FineTuneRunner, publishWith } from './fine-tune-runner.js';
import { GenerationService } from './generation-service.js';
import { maxTokenBytes, promptBytesBound } from './prompt-bytes.js';
import { DEFAULT_MAX_LINE_BYTES } from '../training/data/jsonl-reader.js';
import { JobStore } from './job-store.js';
import { warmUp } from './warm-up.js';
import { workerTrainer } from './worker/fine-tune-thread.js';
import { inProcessTrainer } from './job-training.js';

/** Where the parts of an in-process engine run. */
export interface EnginePlacement {
  /** Train each job in a worker thread of its own (else on this thread). */
  jobsInWorkers: boolean;
  /** Epoch milliseconds the engine was asked for (ServerInfo.startedAtMs). */
  startedAtMs: number;
  /** Called at every decode step boundary (the serving worker posts its outbox there). */
  onStepBoundary?: () => void;
}

/** The engine on the calling thread (the serving worker calls this too, with jobs in workers). */
export async function buildEngine(config: GentuneConfig, options: EngineOptions, placement: EnginePlacement): Promise<Engine> {
  const log = options.log ?? pino({ level: config.logLevel });
  const metrics = options.metrics ?? noMetrics;
  const { startedAtMs } = placement;
  const wasmThreads = config.wasmThreads === 'auto' ? autoWasmThreads(await readModelConfig(config.model)) : config.wasmThreads;
  const backend = await initBackend(config.backend, { wasmThreads, dawnOptions: config.dawnOptions, log: (msg, fields) => log.info(fields ?? {}, msg) });
  const model = await GptModel.load(config.model);
  log.info({ model: model.name, parameters: model.parameters, backend: backend.name }, 'base model loaded');
  const tokenBytes = maxTokenBytes(model.tokenizer);
  // GetServerInfo reports what runs: an embedder's maxConcurrentJobs wins over
  // --max-concurrent-jobs, and the prompt byte bound as derived for this model.
  const limits: Limits = {
    ...config.limits,
    maxConcurrentJobs: options.maxConcurrentJobs ?? config.limits.maxConcurrentJobs,
    maxPromptBytes: promptBytesBound(config.limits, model.config.nPositions, tokenBytes).bytes,
    maxLineBytes: DEFAULT_MAX_LINE_BYTES,
  };
  try {
    const datasets = await DatasetStore.open(join(config.dataDir, 'datasets'), log);
    const adapterStore = await AdapterStore.open(join(config.dataDir, 'adapters'), model.config, log, { rescanMs: config.adapterRescanMs });
    const jobs = await JobStore.open(join(config.dataDir, 'jobs'), log);
    const registry = new AdapterRegistry(adapterStore, log, options.adapterBudgetBytes ?? DEFAULT_ADAPTER_BUDGET_BYTES, metrics, {
      maxAdapters: config.maxAdapters,
      aliases: new AdapterAliases(join(config.dataDir, 'aliases')),
    });
    await registry.preload(config.preload ?? []);
    const generation = new GenerationService(model, registry, config.limits, log, metrics, {
      onStepBoundary: placement.onStepBoundary,
      refreshAdapter: (name) => adapterStore.refresh([name]),
    });
    const evaluation = new EvaluationService(model, registry, generation, datasets, config.limits, log);
    if (config.warmup) await warmUp(model, generation, log);
    const trainer = placement.jobsInWorkers
      ? workerTrainer({
          modelDir: model.path!,
          backend: backend.name as BackendName,
          dawnOptions: config.dawnOptions,
          datasetsDir: datasets.dir,
          adaptersDir: adapterStore.dir,
          checkpointIntervalMs: config.checkpointIntervalMs,
          // As registry.publish would have left it: listed, and resident.
          adopt: async (name, version) => {
            await adapterStore.rescan();
            await registry.load({ name, version }, false);
          },
          log,
        })
      : inProcessTrainer(model, datasets, { checkpointIntervalMs: config.checkpointIntervalMs, log, publish: publishWith(registry) });
    const runner = new FineTuneRunner(model, jobs, datasets, registry, config.limits, log, metrics, {
      trainer,
      concurrency: limits.maxConcurrentJobs,
      runsJobs: config.role !== 'serve',
      lease: { ttlMs: config.leaseTtlMs, renewMs: config.leaseRenewMs },
      pollMs: config.storePollMs,
      onPoll: () => datasets.refresh(),
    });
    runner.start();
    const version = await packageVersion();
    metrics.bindEngine({
      backend,
      model: model.name,
      version,
      sequences: () => generation.sequences,
      adapters: () => ({ resident: registry.residentCount, bytes: registry.residentBytes }),
      jobs: () => countByState(jobs.list({ limit: Number.MAX_SAFE_INTEGER })),
      memory: () => ({ ...deviceMemory(), ...kvCacheMemory() }),
    });
    return new GentuneEngine(config, limits, tokenBytes, version, backend, model, { datasets, jobs, registry, adapterStore, generation, evaluation, runner }, log, startedAtMs);
  } catch (err) {
    model.dispose();
    throw err;
  }
}

interface Parts {
  datasets: DatasetStore;
  jobs: JobStore;
  registry: AdapterRegistry;
  adapterStore: AdapterStore;
  generation: GenerationService;
  evaluation: EvaluationService;
  runner: FineTuneRunner;
}

class GentuneEngine implements Engine {
  private accepting = true;
  private drained: Promise<void> | null = null;

  constructor(
    private readonly config: GentuneConfig,
    private readonly limits: Limits,
    private readonly tokenBytes: number,
    private readonly version: string,
    private readonly backend: BackendInfo,
    private readonly model: GptModel,
    private readonly parts: Parts,
    private readonly log: Logger,
    private readonly startedAtMs: number,
  ) {}

  info(): ServerInfo {
    const c = this.model.config;
    return {
      version: this.version,
      model: {
        name: this.model.name,
        nLayer: c.nLayer,
        nHead: c.nHead,
        nEmbd: c.nEmbd,
        nPositions: c.nPositions,
        vocabSize: c.vocabSize,
        numParameters: this.model.parameters,
        eosTokenId: this.model.tokenizer.eosId,
        architecture: c.family === 'llama' ? c.modelType : 'gpt2',
        nKvHead: c.family === 'llama' ? c.nKvHead : c.nHead,
        eosTokenIds: [...new Set([...this.model.eosIds, ...this.model.chat.endOfTurnIds])],
        hasChatTemplate: !this.model.chat.isFallback,
        maxTokenBytes: this.tokenBytes,
      },
      backend: this.backend.name,
      device: this.backend.device,
      ...(this.backend.gpuAdapter && { gpuAdapter: { ...this.backend.gpuAdapter } }),
      deviceMemory: deviceMemory(),
      limits: { ...this.limits },
      ready: this.isReady(),
      startedAtMs: this.startedAtMs,
    };
  }

  isReady(): boolean {
    // A trapped model backend cannot serve again: not ready (and not live, for Kubernetes) until restarted.
    return this.accepting && !this.parts.generation.backendFault;
  }

  generate(req: GenerateParams, signal: AbortSignal): AsyncIterable<GenerateChunk> {
    return this.parts.generation.generate(req, signal);
  }

  evaluate(req: EvaluateParams, signal: AbortSignal): Promise<EvaluateResult> {
    this.checkAccepting();
    return this.parts.evaluation.evaluate(req, signal);
  }

  evaluateStream(req: EvaluateParams, signal: AbortSignal): AsyncIterable<EvaluateEvent> {
    this.checkAccepting();
    return this.parts.evaluation.stream(req, signal);
  }

  submitFineTune(spec: FineTuneSpec): Promise<JobInfo> {
    this.checkAccepting();
    return this.parts.runner.submit(spec);
  }

  watchJob(jobId: string, fromSequence: number, signal: AbortSignal): AsyncIterable<JobEvent> {
    return this.parts.jobs.watch(jobId, fromSequence, signal);
  }

  async getJob(jobId: string): Promise<JobInfo> {
    return this.parts.jobs.get(jobId);
  }

  async listJobs(filter: JobFilter): Promise<JobInfo[]> {
    return this.parts.jobs.list(filter);
  }

  cancelJob(jobId: string): Promise<JobInfo> {
    return this.parts.runner.cancel(jobId);
  }

  jobEvents(jobId: string): Promise<JobEvent[]> {
    return this.parts.jobs.events(jobId);
  }

  uploadDataset(meta: DatasetUploadMeta, chunks: AsyncIterable<Uint8Array>, signal: AbortSignal): Promise<DatasetInfo> {
    this.checkAccepting();
    return this.parts.datasets.upload(meta, chunks, signal, this.config.limits.maxUploadBytes, this.config.limits.maxDatasetExamples);
  }

  async listDatasets(): Promise<DatasetInfo[]> {
    return this.parts.datasets.list();
  }

  deleteDataset(datasetId: string): Promise<void> {
    return this.parts.datasets.delete(datasetId, this.parts.runner.jobUsingDataset(datasetId));
  }

  datasetContent(datasetId: string): Promise<Uint8Array> {
    return this.parts.datasets.content(datasetId);
  }

  async listAdapters(): Promise<AdapterInfo[]> {
    // Up to date with the folders, as a Generate resolving a name would be.
    await this.parts.adapterStore.refresh(this.parts.registry.list().map((a) => a.name));
    return this.parts.registry.list();
  }

  async loadAdapter(ref: AdapterRef, pin: boolean): Promise<AdapterInfo> {
    // A version renamed into the store a moment ago loads, even before its watch event is handled.
    await this.parts.adapterStore.refresh([ref.name]);
    return this.parts.registry.load(ref, pin);
  }

  async unloadAdapter(ref: AdapterRef): Promise<AdapterInfo> {
    return this.parts.registry.unload(ref);
  }

  deleteAdapter(ref: AdapterRef): Promise<void> {
    return this.parts.registry.delete(ref);
  }

  async setAdapterAlias(name: string, alias: string, version: number): Promise<AdapterInfo> {
    // A version another replica stored a moment ago can be aliased.
    await this.parts.adapterStore.refresh([name]);
    return this.parts.registry.setAlias(name, alias, version);
  }

  drain(graceMs: number): Promise<void> {
    this.drained ??= this.doDrain(graceMs);
    return this.drained;
  }

  private async doDrain(graceMs: number): Promise<void> {
    this.accepting = false;
    const deadline = Date.now() + graceMs;
    this.log.info({ graceMs }, 'engine draining');
    await Promise.all([
      this.parts.generation.drain(graceMs),
      this.parts.runner.drain(graceMs),
    ]);
    await this.parts.evaluation.drain(Math.max(0, deadline - Date.now()));
    await this.parts.jobs.close();
    this.parts.registry.dispose();
    this.model.dispose();
    this.log.info('engine drained');
  }

  private checkAccepting(): void {
    if (!this.accepting) throw new Unavailable('the server is shutting down');
  }
}

/** How many jobs are in each state. */
function countByState(jobs: readonly { state: JobState }[]): Partial<Record<JobState, number>> {
  const counts: Partial<Record<JobState, number>> = {};
  for (const j of jobs) counts[j.state] = (counts[j.state] ?? 0) + 1;
  return counts;
}

/** gentune's version from package.json ('' if it cannot be read). */
async function packageVersion(): Promise<string> {
  try {
    const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '';
  } catch {
    return '';
  }
}
