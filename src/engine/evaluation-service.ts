/**
 * Evaluate: scores the base model and/or adapters on one dataset. Token
 * metrics (loss, perplexity, token accuracy) come from teacher forcing
 * (src/training/evaluate-loss.ts); generation metrics (BLEU, chrF, ROUGE,
 * exact match) from greedy-or-as-asked generation for each prompt, scored against
 * its completion (src/eval). The generations are background rows of the
 * serving decode loop (GenerationService.complete): they batch with Generate's
 * rows and let every waiting Generate in first, rather than running a second
 * decoder beside it. Teacher forcing is cut into small pieces with a readback
 * each, so the event loop keeps turning and an abort stops it quickly; after
 * each piece (each example, for generation) an optional listener hears how
 * far the work got (EvaluateStream's progress events).
 */
import type { Logger } from 'pino';
import { Cancelled, InvalidArgument, Unavailable } from '../common/errors.js';
import { computeGenerationMetrics, type GenerationMetricName } from '../eval/index.js';
import type { Adapter } from '../model/adapter.js';
import type { GptModel } from '../model/gpt-model.js';
import type { NumberedExample } from '../training/data/sft-example.js';
import { encodeSegments } from '../training/data/tokenize-example.js';
import { lossTokenCount, type TokenSequence } from '../training/data/token-sequence.js';
import { evaluateLoss } from '../training/evaluate-loss.js';
import type { AdapterLease, AdapterRegistry } from './adapter-registry.js';
import { ChunkChannel } from './chunk-channel.js';
import type { LimitsConfig } from './config.js';
import type { DatasetStore } from './dataset-store.js';
import type {
  EvaluateEvent,
  EvaluatePhase,
  EvaluateParams,
  EvaluateProgressListener,
  EvaluateResult,
  ExampleResult,
  MetricName,
  MetricValues,
  ModelEvaluation,
} from './engine-api.js';
import { readExamples, tokenizeExamples } from './examples.js';
import { type GenerationService, modelSampling } from './generation-service.js';

const TOKEN_METRICS: readonly MetricName[] = ['loss', 'perplexity', 'tokenAccuracy'];
const GENERATION_METRICS: Partial<Record<MetricName, GenerationMetricName>> = {
  bleu: 'bleu', rouge1: 'rouge1', rouge2: 'rouge2', rougeL: 'rougeL', exactMatch: 'exact_match',
  chrf: 'chrf', chrfPlusPlus: 'chrf_plus_plus', meteor: 'meteor',
};
/** Sequences per teacher-forcing readback (one chunk of work between event-loop turns). */
const LOSS_CHUNK = 16;

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

interface Prompted {
  promptIds: number[];
  reference: string;
  /** Where generation stops: end of turn for a chat example, EOS otherwise. */
  eosIds: readonly number[];
}

/** Reports `examplesDone` of one phase of the model being scored. */
type PhaseReport = (phase: EvaluatePhase, examplesDone: number) => void;

/** Runs Evaluate requests. */
export class EvaluationService {
  private readonly running = new Set<AbortController>();

  constructor(
    private readonly model: GptModel,
    private readonly registry: AdapterRegistry,
    private readonly generation: GenerationService,
    private readonly datasets: DatasetStore,
    private readonly limits: LimitsConfig,
    private readonly log: Logger,
  ) {}

  /** Scores the models of `req`; `onProgress` hears after each chunk of examples, per model and phase. */
  async evaluate(req: EvaluateParams, signal: AbortSignal, onProgress?: EvaluateProgressListener): Promise<EvaluateResult> {
    const controller = new AbortController();
    const onAbort = () => controller.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) onAbort();
    this.running.add(controller);
    const leases: AdapterLease[] = [];
    try {
      const nPositions = this.model.config.nPositions;
      const maxSeqLen = req.maxSeqLen ?? nPositions;
      if (maxSeqLen > nPositions) {
        throw new InvalidArgument(`\`max_seq_len\` must be <= n_positions ${nPositions}, got ${maxSeqLen}`);
      }
      // Resolve every adapter before any work: a typo fails fast.
      req.adapters.forEach((ref, i) => this.registry.usable(ref, `adapters[${i}]`));
      let records = await readExamples(req.data, this.datasets);
      if (req.maxExamples !== undefined) records = records.slice(0, req.maxExamples);
      if (records.length === 0) throw new InvalidArgument('the evaluation set has no examples');
      const sequences = tokenizeExamples(records, this.model.tokenizer, maxSeqLen, true, this.model.chat);
      const numTokens = sequences.reduce((n, s) => n + lossTokenCount(s), 0);
      const genMetrics = req.metrics.map((m) => GENERATION_METRICS[m]).filter((m): m is GenerationMetricName => m !== undefined);
      const prompts = genMetrics.length > 0 ? this.prompts(records, req.generation.maxNewTokens) : [];

      const results: ModelEvaluation[] = [];
      const withBase = req.includeBaseModel || req.adapters.length === 0;
      const numModels = req.adapters.length + (withBase ? 1 : 0);
      const reporter = (adapter: string): PhaseReport => (phase, examplesDone) =>
        onProgress?.({ adapter, phase, examplesDone, examplesTotal: records.length, modelIndex: results.length, numModels });
      if (withBase) {
        results.push(await this.evaluateOne(req, undefined, sequences, prompts, genMetrics, controller.signal, reporter('')));
      }
      for (const [i, ref] of req.adapters.entries()) {
        const lease = await this.registry.acquire(ref, `adapters[${i}]`);
        leases.push(lease);
        results.push(await this.evaluateOne(req, lease, sequences, prompts, genMetrics, controller.signal, reporter(lease.label)));
      }
      return { results, numExamples: records.length, numTokens };
    } finally {
      for (const l of leases) l.release();
      signal.removeEventListener('abort', onAbort);
      this.running.delete(controller);
    }
  }

  /**
   * {@link evaluate} as a stream: progress reports as the work goes, then the
   * result. The reports are queued without limit (one per chunk of examples,
   * so at most a few thousand), so the work never waits for a slow reader.
   */
  async *stream(req: EvaluateParams, signal: AbortSignal): AsyncGenerator<EvaluateEvent> {
    const events = new ChunkChannel<EvaluateEvent>();
    // A reader that stops early stops the work, as a client that went away would.
    const work = new AbortController();
    const onAbort = () => work.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) onAbort();
    this.evaluate(req, work.signal, (progress) => events.push({ kind: 'progress', progress })).then(
      (result) => {
        events.push({ kind: 'result', result });
        events.end();
      },
      (err: unknown) => events.fail(err),
    );
    try {
      for (;;) {
        const next = await events.next();
        if (next.done) return;
        yield next.value;
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      if (!events.isEnded) work.abort(new Cancelled('the caller stopped reading the evaluation'));
    }
  }

  /** Waits up to `graceMs` for evaluations to end, then aborts them. */
  async drain(graceMs: number): Promise<void> {
    const deadline = Date.now() + graceMs;
    while (this.running.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const c of this.running) c.abort(new Unavailable('the server is shutting down'));
    while (this.running.size > 0) await new Promise((r) => setTimeout(r, 20));
  }

  private async evaluateOne(
    req: EvaluateParams,
    lease: AdapterLease | undefined,
    sequences: TokenSequence[],
    prompts: Prompted[],
    genMetrics: GenerationMetricName[],
    signal: AbortSignal,
    report: PhaseReport,
  ): Promise<ModelEvaluation> {
    const started = performance.now();
    const metrics: MetricValues = {};
    const rows: ExampleResult[] = req.includeExamples
      ? sequences.map((_, index) => ({ index, generated: '', metrics: {} }))
      : [];
    if (req.metrics.some((m) => TOKEN_METRICS.includes(m))) {
      const totals = await this.tokenScores(sequences, lease?.adapter, req.includeExamples ? rows : undefined, signal, (n) => report('loss', n));
      const loss = totals.lossSum / totals.tokens;
      const values: MetricValues = { loss, perplexity: Math.exp(loss), tokenAccuracy: totals.correct / totals.tokens };
      for (const m of TOKEN_METRICS) if (req.metrics.includes(m)) metrics[m] = values[m];
      for (const row of rows) for (const m of Object.keys(row.metrics) as MetricName[]) if (!req.metrics.includes(m)) delete row.metrics[m];
    }
    if (genMetrics.length > 0) {
      const generated = await this.generateAll(prompts, req, lease, signal, (n) => report('generation', n));
      const scored = computeGenerationMetrics(genMetrics, generated, prompts.map((p) => [p.reference]));
      for (const [name, metric] of Object.entries(GENERATION_METRICS) as [MetricName, GenerationMetricName][]) {
        if (scored.aggregates[metric] === undefined) continue;
        metrics[name] = scored.aggregates[metric];
        rows.forEach((row, i) => (row.metrics[name] = scored.perExample[i][metric]));
      }
      rows.forEach((row, i) => (row.generated = generated[i]));
    }
    return { adapter: lease?.label ?? '', metrics, examples: rows, evalSeconds: (performance.now() - started) / 1000 };
  }

  /** Token-weighted loss sums over every sequence; per-example rows when asked. */
  private async tokenScores(
    sequences: TokenSequence[],
    adapter: Adapter | undefined,
    rows: ExampleResult[] | undefined,
    signal: AbortSignal,
    report: (examplesDone: number) => void,
  ): Promise<{ lossSum: number; correct: number; tokens: number }> {
    const options = { adapter, padId: this.model.tokenizer.eosId, batchSize: this.limits.maxBatchSize };
    const totals = { lossSum: 0, correct: 0, tokens: 0 };
    // Per-example rows need one evaluation per example; otherwise chunks of several.
    const step = rows ? 1 : LOSS_CHUNK;
    for (let start = 0; start < sequences.length; start += step) {
      if (signal.aborted) throw signal.reason;
      const chunk = sequences.slice(start, start + step).filter((s) => lossTokenCount(s) > 0);
      if (chunk.length > 0) {
        const r = await evaluateLoss(this.model.config, this.model.weights, chunk, options);
        totals.lossSum += r.loss * r.tokens;
        totals.correct += r.tokenAccuracy * r.tokens;
        totals.tokens += r.tokens;
        if (rows) rows[start].metrics = { loss: r.loss, perplexity: r.perplexity, tokenAccuracy: r.tokenAccuracy };
      }
      // Chunks with nothing to score count as done too, so the last report is the total.
      report(Math.min(start + step, sequences.length));
      await nextTurn();
    }
    if (totals.tokens === 0) throw new InvalidArgument('the evaluation set has no completion tokens to score');
    return totals;
  }

  /**
   * Generates for every prompt through the decode loop, keeping up to
   * limits.maxBatchSize of them in it (a new one joins as each finishes);
   * reports after each example. The first failure stops the others; the
   * error thrown is the first one.
   */
  private async generateAll(
    prompts: Prompted[],
    req: EvaluateParams,
    lease: AdapterLease | undefined,
    signal: AbortSignal,
    report: (examplesDone: number) => void,
  ): Promise<string[]> {
    const params = { ...modelSampling(req.generation, false), seed: req.generation.seed ?? 0 };
    const texts = prompts.map(() => '');
    const stop = new AbortController();
    const onAbort = () => stop.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) onAbort();
    let next = 0;
    let done = 0;
    const worker = async (): Promise<void> => {
      while (next < prompts.length) {
        if (stop.signal.aborted) throw stop.signal.reason;
        const i = next++;
        const p = prompts[i];
        texts[i] = await this.generation.complete(p.promptIds, { ...params, eosIds: p.eosIds }, lease, stop.signal);
        report(++done);
      }
    };
    try {
      // Settle every worker before returning, even after a failure: their rows
      // use the adapter lease, which the caller releases once this returns.
      const settled = await Promise.allSettled(
        Array.from({ length: Math.min(this.limits.maxBatchSize, prompts.length) }, () =>
          worker().catch((err: unknown) => {
            stop.abort(err);
            throw err;
          }),
        ),
      );
      // Every failure aborted `stop` first, so its reason is the first error.
      if (settled.some((s) => s.status === 'rejected')) throw stop.signal.reason;
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
    return texts;
  }

  /** The prompt ids and the reference completion of each example (left-truncated to leave room to generate). */
  private prompts(records: NumberedExample[], maxNewTokens: number): Prompted[] {
    const tok = this.model.tokenizer;
    const room = this.model.config.nPositions - maxNewTokens;
    if (room < 1) {
      throw new InvalidArgument(`\`generation.max_new_tokens\` must be < n_positions ${this.model.config.nPositions}, got ${maxNewTokens}`);
    }
    return records.map(({ line, example }) => {
      let ids: number[];
      let reference: string;
      let eosIds = this.model.eosIds;
      if (example.kind === 'prompt_completion') {
        ids = tok.encode(example.prompt);
        reference = example.completion;
      } else if (example.kind === 'chat') {
        eosIds = this.model.chat.endOfTurnIds;
        const last = example.messages.length - 1;
        const segments = this.model.chat.segments(example.messages.slice(0, last), { addGenerationPrompt: true });
        ids = Array.from(encodeSegments(segments, tok).ids);
        reference = example.messages[last].content;
      } else {
        throw new InvalidArgument(`line ${line}: generation metrics need prompt/completion or chat examples, got a text example`);
      }
      if (ids.length === 0) ids = [tok.eosId];
      return { promptIds: ids.slice(Math.max(0, ids.length - room)), reference, eosIds };
    });
  }
}
