/** Engine domain types (see ../engine-api.ts): Evaluate: what to score, with which metrics, and the scores. */
import type { AdapterRef } from './adapters.js';
import type { DataSource } from './datasets.js';
import type { SamplingParams } from './generation.js';

/** Evaluate metric names (proto Metric, camelCase). */
export type MetricName =
  | 'loss'
  | 'perplexity'
  | 'tokenAccuracy'
  | 'bleu'
  | 'rouge1'
  | 'rouge2'
  | 'rougeL'
  | 'exactMatch'
  | 'chrf'
  | 'chrfPlusPlus'
  | 'meteor';

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

/** What an evaluation is working on: teacher-forced scoring, or generating for the prompts. */
export type EvaluatePhase = 'loss' | 'generation';

/** Progress of one phase of one model, reported after each chunk of examples. */
export interface EvaluateProgress {
  /** "name@version"; '' for the base model. */
  adapter: string;
  phase: EvaluatePhase;
  /** Examples this phase has finished for this model; increasing, `examplesTotal` on the phase's last report. */
  examplesDone: number;
  /** Examples this phase scores for this model. */
  examplesTotal: number;
  /** 0-based position of this model among those evaluated (base first when included). */
  modelIndex: number;
  /** Models evaluated in this call. */
  numModels: number;
}

/** Called by {@link Engine.evaluate}'s work after each chunk; must not throw. */
export type EvaluateProgressListener = (progress: EvaluateProgress) => void;

/** One item of {@link Engine.evaluateStream}: progress reports, then one result (the last item). */
export type EvaluateEvent = { kind: 'progress'; progress: EvaluateProgress } | { kind: 'result'; result: EvaluateResult };
