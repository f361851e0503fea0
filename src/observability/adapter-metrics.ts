/**
 * Adapter metrics: traffic per adapter (label `adapter`, capped by
 * AdapterLabels), what is resident on the backend, and the registry's loads
 * and evictions.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { AdapterLabels } from './adapter-labels.js';

const LOAD_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class AdapterMetrics {
  private readonly requests: Counter<'adapter'>;
  private readonly promptTokens: Counter<'adapter'>;
  private readonly generatedTokens: Counter<'adapter'>;
  private readonly loads: Counter<'result'>;
  private readonly loadDuration: Histogram;
  private readonly evictions: Counter;
  private resident: () => { resident: number; bytes: number } = () => ({ resident: 0, bytes: 0 });

  constructor(
    registry: Registry,
    prefix: string,
    private readonly labels: AdapterLabels,
  ) {
    const registers = [registry];
    const p = `${prefix}adapter_`;
    this.requests = new Counter({ name: `${p}requests_total`, help: 'Generate requests per adapter ("(base)": the base model; "(other)": adapters beyond the label cap).', labelNames: ['adapter'], registers });
    this.promptTokens = new Counter({ name: `${p}prompt_tokens_total`, help: 'Prompt tokens prefilled, per adapter.', labelNames: ['adapter'], registers });
    this.generatedTokens = new Counter({ name: `${p}generated_tokens_total`, help: 'Tokens generated, per adapter.', labelNames: ['adapter'], registers });
    this.loads = new Counter({ name: `${p}loads_total`, help: 'Adapter versions read from the store onto the backend, by result.', labelNames: ['result'], registers });
    for (const result of ['success', 'error']) this.loads.inc({ result }, 0);
    this.loadDuration = new Histogram({ name: `${p}load_duration_seconds`, help: 'Time to read an adapter version from the store onto the backend, in seconds.', buckets: LOAD_BUCKETS, registers });
    this.evictions = new Counter({ name: `${p}evictions_total`, help: 'Idle adapter versions evicted to stay within the adapter memory budget.', registers });
    const count: Gauge = new Gauge({
      name: `${prefix}adapters_resident`,
      help: 'Adapter versions resident on the backend.',
      registers,
      collect: () => count.set(this.resident().resident),
    });
    const bytes: Gauge = new Gauge({
      name: `${prefix}adapters_resident_bytes`,
      help: 'Bytes of the tensors of resident adapter versions.',
      registers,
      collect: () => bytes.set(this.resident().bytes),
    });
  }

  /** Reads residency from the registry at scrape time. */
  bind(resident: () => { resident: number; bytes: number }): void {
    this.resident = resident;
  }

  request(adapter: string): void {
    this.requests.inc({ adapter: this.labels.of(adapter) });
  }

  prompt(adapter: string, tokens: number): void {
    this.promptTokens.inc({ adapter: this.labels.of(adapter) }, tokens);
  }

  token(adapter: string): void {
    this.generatedTokens.inc({ adapter: this.labels.of(adapter) });
  }

  load(ms: number, ok: boolean): void {
    this.loads.inc({ result: ok ? 'success' : 'error' });
    this.loadDuration.observe(ms / 1000);
  }

  evicted(): void {
    this.evictions.inc();
  }
}
