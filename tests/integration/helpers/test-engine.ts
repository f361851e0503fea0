/**
 * A small in-process Engine for the server's integration tests: deterministic,
 * fast, no model. Generation emits " t0", " t1", ... one token per `stepMs`;
 * fine-tuning runs a few fake steps and publishes an adapter version; datasets
 * are parsed and validated line by line like the real store does.
 */
import { createHash, randomUUID } from 'node:crypto';
import { FailedPrecondition, InvalidArgument, NotFound } from '../../../src/common/errors.js';
import type { GentuneConfig } from '../../../src/engine/config.js';
import type {
  AdapterInfo,
  AdapterRef,
  DatasetInfo,
  DatasetUploadMeta,
  Engine,
  EvaluateParams,
  EvaluateResult,
  FineTuneSpec,
  GenerateChunk,
  GenerateParams,
  JobEvent,
  JobEventBody,
  JobFilter,
  JobInfo,
  ServerInfo,
} from '../../../src/engine/engine-api.js';

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });

export interface TestEngineOptions {
  /** Milliseconds per generated token. Default 1. */
  stepMs?: number;
  /** Milliseconds per fake training step. Default 5. */
  trainStepMs?: number;
  /** Starts ready. Default true. */
  ready?: boolean;
}

interface Job {
  info: JobInfo;
  events: JobEvent[];
  listeners: Set<() => void>;
}

export class TestEngine implements Engine {
  ready: boolean;
  readonly stepMs: number;
  readonly trainStepMs: number;
  private readonly jobs = new Map<string, Job>();
  private readonly datasets = new Map<string, DatasetInfo>();
  private readonly adapters = new Map<string, AdapterInfo>();
  private readonly startedAtMs = Date.now();

  constructor(private readonly config: GentuneConfig, options: TestEngineOptions = {}) {
    this.ready = options.ready ?? true;
    this.stepMs = options.stepMs ?? 1;
    this.trainStepMs = options.trainStepMs ?? 5;
  }

  info(): ServerInfo {
    return {
      version: '0.0.0-test',
      model: { name: 'test-model', nLayer: 2, nHead: 2, nEmbd: 32, nPositions: 128, vocabSize: 1000, numParameters: 12345, eosTokenId: 999 },
      backend: 'cpu',
      limits: this.config.limits,
      ready: this.ready,
      startedAtMs: this.startedAtMs,
    };
  }

  isReady(): boolean {
    return this.ready;
  }

  private resolve(ref: AdapterRef): { name: string; version: number } {
    const adapter = this.adapters.get(ref.name);
    const version = ref.version ?? adapter?.latestVersion;
    if (!adapter || !adapter.versions.some((v) => v.version === version)) {
      throw new NotFound(`adapter ${JSON.stringify(ref.version ? `${ref.name}@${ref.version}` : ref.name)} not found`);
    }
    return { name: ref.name, version: version! };
  }

  async *generate(req: GenerateParams, signal: AbortSignal): AsyncIterable<GenerateChunk> {
    const adapter = req.adapter ? this.resolve(req.adapter) : null;
    const promptTokens = typeof req.prompt === 'string' ? req.prompt.split(/\s+/).filter(Boolean).length : req.prompt.length;
    if (promptTokens > this.config.limits.maxPromptTokens) {
      throw new InvalidArgument(`\`prompt\` must be at most ${this.config.limits.maxPromptTokens} tokens, got ${promptTokens}`);
    }
    const start = performance.now();
    let text = '';
    let reason: 'length' | 'stop_sequence' | 'cancelled' = 'length';
    let generated = 0;
    for (let i = 0; i < req.sampling.maxNewTokens; i++) {
      await sleep(this.stepMs, signal);
      if (signal.aborted) {
        reason = 'cancelled';
        break;
      }
      const piece = ` t${i}`;
      generated++;
      text += piece;
      const stop = req.sampling.stop.find((s) => text.includes(s));
      if (stop !== undefined) {
        reason = 'stop_sequence';
        break;
      }
      const logprobs = req.logprobs
        ? [{ tokenId: i, token: piece, logprob: -0.5, topLogprobs: Array.from({ length: req.topLogprobs }, (_, k) => ({ tokenId: k, token: `k${k}`, logprob: -1 - k })) }]
        : undefined;
      yield { text: piece, tokenIds: [i], logprobs };
    }
    const totalMs = performance.now() - start;
    yield {
      text: '',
      tokenIds: [],
      finish: {
        reason,
        usage: { promptTokens, generatedTokens: generated, timeToFirstTokenMs: this.stepMs, totalMs, queueMs: 0 },
        adapter: adapter ? `${adapter.name}@${adapter.version}` : '',
      },
    };
  }

  async evaluate(req: EvaluateParams, signal: AbortSignal): Promise<EvaluateResult> {
    const examples = 'datasetId' in req.data ? this.dataset(req.data.datasetId).numExamples : req.data.examples.length;
    const n = Math.min(examples, req.maxExamples ?? Infinity);
    const models = [...(req.includeBaseModel ? [null] : []), ...req.adapters.map((a) => this.resolve(a))];
    const results = [];
    for (const [k, m] of models.entries()) {
      await sleep(this.stepMs * n, signal);
      if (signal.aborted) throw signal.reason;
      const metrics = Object.fromEntries(req.metrics.map((name) => [name, name === 'perplexity' ? Math.exp(2 - k * 0.5) : 2 - k * 0.5]));
      results.push({
        adapter: m ? `${m.name}@${m.version}` : '',
        metrics,
        examples: req.includeExamples ? Array.from({ length: n }, (_, index) => ({ index, generated: 'out', metrics })) : [],
        evalSeconds: 0.01,
      });
    }
    return { results, numExamples: n, numTokens: n * 10 };
  }

  private dataset(id: string): DatasetInfo {
    const d = this.datasets.get(id);
    if (!d) throw new NotFound(`dataset ${JSON.stringify(id)} not found`);
    return d;
  }

  private job(id: string): Job {
    const job = this.jobs.get(id);
    if (!job) throw new NotFound(`fine-tune job ${JSON.stringify(id)} not found`);
    return job;
  }

  private emit(job: Job, body: JobEventBody): void {
    job.events.push({ jobId: job.info.id, sequence: job.events.length, timeMs: Date.now(), ...body } as JobEvent);
    for (const l of job.listeners) l();
  }

  async submitFineTune(spec: FineTuneSpec): Promise<JobInfo> {
    if ('datasetId' in spec.training) this.dataset(spec.training.datasetId);
    if (spec.baseModel !== '' && spec.baseModel !== 'test-model') {
      throw new FailedPrecondition(`\`base_model\` must be the served model "test-model", got ${JSON.stringify(spec.baseModel)}`);
    }
    const info: JobInfo = { id: `ft-${randomUUID().slice(0, 8)}`, state: 'queued', spec, createdAtMs: Date.now(), step: 0, totalSteps: 0 };
    const job: Job = { info, events: [], listeners: new Set() };
    this.jobs.set(info.id, job);
    this.emit(job, { type: 'queued', position: 0 });
    void this.train(job);
    return { ...info };
  }

  /** Read through a call so TypeScript does not narrow it across awaits. */
  private state(job: Job): JobInfo['state'] {
    return job.info.state;
  }

  private async train(job: Job): Promise<void> {
    const total = job.info.spec.hyperparameters.maxSteps ?? 4;
    await sleep(this.trainStepMs);
    if (this.state(job) !== 'queued') return; // cancelled meanwhile
    Object.assign(job.info, { state: 'running', startedAtMs: Date.now(), totalSteps: total });
    this.emit(job, { type: 'started', totalSteps: total, numTrainExamples: 8, numValidationExamples: 2, trainableParameters: 1024 });
    for (let step = 1; step <= total; step++) {
      await sleep(this.trainStepMs);
      if (this.state(job) !== 'running') return;
      const loss = 3 / step;
      Object.assign(job.info, { step, loss });
      this.emit(job, { type: 'progress', step, totalSteps: total, epoch: step / 2, loss, learningRate: 2e-4, gradNorm: 1, tokensPerSecond: 1000, etaSeconds: (total - step) * 0.005 });
    }
    this.emit(job, { type: 'evaluation', step: total, evalLoss: 1.5, perplexity: Math.exp(1.5) });
    this.emit(job, { type: 'checkpoint', step: total });
    const name = job.info.spec.adapter;
    const existing = this.adapters.get(name);
    const version = (existing?.latestVersion ?? 0) + 1;
    const method = job.info.spec.method;
    this.adapters.set(name, {
      name,
      latestVersion: version,
      versions: [
        ...(existing?.versions ?? []),
        {
          version, baseModel: 'test-model', method: method.kind, r: method.kind === 'lora' ? method.r ?? 8 : 0,
          loraAlpha: method.kind === 'lora' ? method.loraAlpha ?? 16 : 0, targetModules: ['c_attn'], sizeBytes: 4096,
          residency: 'stored', createdAtMs: Date.now(), jobId: job.info.id,
        },
      ],
    });
    const metrics = { trainLoss: job.info.loss ?? 0, evalLoss: 1.5, perplexity: Math.exp(1.5), steps: total, tokens: total * 64, trainSeconds: 0.1 };
    Object.assign(job.info, { state: 'succeeded', finishedAtMs: Date.now(), adapterVersion: version, metrics });
    this.emit(job, { type: 'succeeded', adapter: name, version, metrics });
  }

  async *watchJob(jobId: string, fromSequence: number, signal: AbortSignal): AsyncIterable<JobEvent> {
    const job = this.job(jobId);
    let next = fromSequence;
    let wake: (() => void) | undefined;
    const listener = () => wake?.();
    job.listeners.add(listener);
    const onAbort = () => wake?.();
    signal.addEventListener('abort', onAbort);
    try {
      for (;;) {
        while (next < job.events.length) yield job.events[next++]!;
        const last = job.events.at(-1);
        if (signal.aborted || (last && ['succeeded', 'failed', 'cancelled'].includes(last.type))) return;
        await new Promise<void>((resolve) => (wake = resolve));
      }
    } finally {
      job.listeners.delete(listener);
      signal.removeEventListener('abort', onAbort);
    }
  }

  async getJob(jobId: string): Promise<JobInfo> {
    return { ...this.job(jobId).info };
  }

  async listJobs(filter: JobFilter): Promise<JobInfo[]> {
    return [...this.jobs.values()]
      .map((j) => ({ ...j.info }))
      .filter((j) => (!filter.state || j.state === filter.state) && (!filter.adapter || j.spec.adapter === filter.adapter))
      .reverse()
      .slice(0, filter.limit);
  }

  async cancelJob(jobId: string): Promise<JobInfo> {
    const job = this.job(jobId);
    if (!['queued', 'running'].includes(job.info.state)) {
      throw new FailedPrecondition(`fine-tune job ${JSON.stringify(jobId)} already ${job.info.state}`);
    }
    Object.assign(job.info, { state: 'cancelled', finishedAtMs: Date.now() });
    this.emit(job, { type: 'cancelled' });
    return { ...job.info };
  }

  async uploadDataset(meta: DatasetUploadMeta, chunks: AsyncIterable<Uint8Array>): Promise<DatasetInfo> {
    const parts: Buffer[] = [];
    for await (const chunk of chunks) parts.push(Buffer.from(chunk));
    const bytes = Buffer.concat(parts);
    const lines = bytes.toString('utf8').split('\n');
    let format = meta.format === 'auto' ? undefined : meta.format;
    let count = 0;
    for (const [i, line] of lines.entries()) {
      if (line.trim() === '') continue;
      let row: Record<string, unknown>;
      try {
        row = JSON.parse(line);
      } catch {
        throw new InvalidArgument(`line ${i + 1}: not valid JSON`);
      }
      const shape = 'messages' in row ? 'chat' : 'text' in row ? 'text' : 'prompt_completion';
      format ??= shape;
      if (format === 'prompt_completion' && typeof row.completion !== 'string') throw new InvalidArgument(`line ${i + 1}: missing \`completion\``);
      if (format !== shape && format !== 'prompt_completion') throw new InvalidArgument(`line ${i + 1}: expected a ${format} example`);
      count++;
    }
    if (count === 0) throw new InvalidArgument('the dataset has no examples');
    const info: DatasetInfo = {
      id: `ds-${randomUUID().slice(0, 8)}`, name: meta.name, format: format!, numExamples: count, sizeBytes: bytes.length,
      sha256: createHash('sha256').update(bytes).digest('hex'), createdAtMs: Date.now(),
    };
    this.datasets.set(info.id, info);
    return info;
  }

  async listDatasets(): Promise<DatasetInfo[]> {
    return [...this.datasets.values()].reverse();
  }

  async deleteDataset(datasetId: string): Promise<void> {
    this.dataset(datasetId);
    this.datasets.delete(datasetId);
  }

  async listAdapters(): Promise<AdapterInfo[]> {
    return [...this.adapters.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  private setResidency(ref: AdapterRef, residency: 'stored' | 'loaded' | 'pinned'): AdapterInfo {
    const { name, version } = this.resolve(ref);
    const adapter = this.adapters.get(name)!;
    for (const v of adapter.versions) {
      if (v.version === version || (ref.version === undefined && residency === 'stored')) v.residency = residency;
    }
    return adapter;
  }

  async loadAdapter(ref: AdapterRef, pin: boolean): Promise<AdapterInfo> {
    return this.setResidency(ref, pin ? 'pinned' : 'loaded');
  }

  async unloadAdapter(ref: AdapterRef): Promise<AdapterInfo> {
    return this.setResidency(ref, 'stored');
  }

  async deleteAdapter(ref: AdapterRef): Promise<void> {
    const { name, version } = this.resolve(ref);
    const adapter = this.adapters.get(name)!;
    adapter.versions = ref.version === undefined ? [] : adapter.versions.filter((v) => v.version !== version);
    if (adapter.versions.length === 0) this.adapters.delete(name);
    else adapter.latestVersion = Math.max(...adapter.versions.map((v) => v.version));
  }

  async drain(): Promise<void> {}
}
