/**
 * Serving metrics of Generate, in the vocabulary of TGI and vLLM: queue time,
 * time to first token (TTFT), inter-token latency (ITL), end-to-end latency,
 * prompt and generated tokens, the running batch and the queue, finish reasons.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { FinishReason } from '../engine/engine-api.js';

const TTFT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const INTER_TOKEN_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const E2E_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
const QUEUE_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096];

/** Finish reasons, each exported from the start so that rate() sees the first one. */
const REASONS: readonly (FinishReason | 'error')[] = ['length', 'eos', 'stop_sequence', 'cancelled', 'error'];

export class GenerationMetrics {
  private readonly requests: Counter;
  private readonly promptTokens: Counter;
  private readonly generatedTokens: Counter;
  private readonly queueTime: Histogram;
  private readonly timeToFirstToken: Histogram;
  private readonly interToken: Histogram;
  private readonly e2e: Histogram;
  private readonly batchSize: Histogram;
  private readonly finished: Counter<'reason'>;
  private sequences: () => { running: number; waiting: number } = () => ({ running: 0, waiting: 0 });

  constructor(registry: Registry, prefix: string) {
    const registers = [registry];
    const p = `${prefix}generation_`;
    this.requests = new Counter({ name: `${p}requests_total`, help: 'Generate requests queued.', registers });
    this.promptTokens = new Counter({ name: `${p}prompt_tokens_total`, help: 'Prompt tokens prefilled.', registers });
    this.generatedTokens = new Counter({ name: `${p}generated_tokens_total`, help: 'Tokens generated (sampled and streamed).', registers });
    this.queueTime = new Histogram({ name: `${p}queue_time_seconds`, help: 'Time from arrival to joining the batch, in seconds.', buckets: QUEUE_BUCKETS, registers });
    this.timeToFirstToken = new Histogram({ name: `${p}time_to_first_token_seconds`, help: 'Time from arrival to the first generated token (queue and prefill included), in seconds.', buckets: TTFT_BUCKETS, registers });
    this.interToken = new Histogram({ name: `${p}inter_token_latency_seconds`, help: 'Time between consecutive generated tokens of a request, in seconds.', buckets: INTER_TOKEN_BUCKETS, registers });
    this.e2e = new Histogram({ name: `${p}e2e_latency_seconds`, help: 'Time from arrival to the end of a request, in seconds.', buckets: E2E_BUCKETS, registers });
    this.batchSize = new Histogram({ name: `${p}batch_size`, help: 'Sequences decoded by one forward pass.', buckets: BATCH_BUCKETS, registers });
    this.finished = new Counter({ name: `${p}finished_total`, help: 'Generate requests ended, by finish reason (error: the decode step failed).', labelNames: ['reason'], registers });
    for (const reason of REASONS) this.finished.inc({ reason }, 0);
    const running: Gauge = new Gauge({
      name: `${p}sequences_running`,
      help: 'Sequences in the decode batch.',
      registers,
      collect: () => running.set(this.sequences().running),
    });
    const waiting: Gauge = new Gauge({
      name: `${p}sequences_waiting`,
      help: 'Generate requests waiting for a batch slot.',
      registers,
      collect: () => waiting.set(this.sequences().waiting),
    });
  }

  /** Reads the batch and queue sizes from the engine at scrape time. */
  bind(sequences: () => { running: number; waiting: number }): void {
    this.sequences = sequences;
  }

  queued(): void {
    this.requests.inc();
  }

  prefill(promptTokens: number, queueMs: number): void {
    this.promptTokens.inc(promptTokens);
    this.queueTime.observe(queueMs / 1000);
  }

  firstToken(ttftMs: number): void {
    this.generatedTokens.inc();
    this.timeToFirstToken.observe(ttftMs / 1000);
  }

  nextToken(interTokenMs: number): void {
    this.generatedTokens.inc();
    this.interToken.observe(interTokenMs / 1000);
  }

  finish(reason: FinishReason | 'error', e2eMs: number): void {
    this.finished.inc({ reason });
    this.e2e.observe(e2eMs / 1000);
  }

  decodeStep(batchSize: number): void {
    this.batchSize.observe(batchSize);
  }
}
