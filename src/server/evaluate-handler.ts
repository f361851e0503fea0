/**
 * Evaluate and EvaluateStream: validate the request, run the engine's
 * evaluation (it honors the call's signal, so a deadline stops it), encode
 * per-model results; EvaluateStream sends the engine's progress reports
 * before the result.
 */
import type { EvaluateEvent as EngineEvaluateEvent, EvaluateParams, EvaluateProgress, EvaluateResult, MetricName } from '../engine/engine-api.js';
import { EvaluateEvent, EvaluatePhase, EvaluateRequest, EvaluateResponse, Metric } from '../gen/gentune/v1/evaluate.js';
import { decodeDataSource, decodeSampling } from './convert.js';
import { serverStream, unary, type RpcDeps } from './rpc.js';
import { checkEnum, checkItemsLimit, checkMaxItems, checkRange, checkUnique, parseAdapterRef } from './validate.js';

/** Adapters one Evaluate call may compare. */
export const MAX_EVAL_ADAPTERS = 16;
/** Metrics when the request names none. */
export const DEFAULT_METRICS: MetricName[] = ['loss', 'perplexity', 'tokenAccuracy'];
/** max_new_tokens of generation metrics when the request leaves it out. */
export const DEFAULT_EVAL_MAX_NEW_TOKENS = 64;

const METRICS = new Map<number, MetricName>([
  [Metric.METRIC_LOSS, 'loss'],
  [Metric.METRIC_PERPLEXITY, 'perplexity'],
  [Metric.METRIC_TOKEN_ACCURACY, 'tokenAccuracy'],
  [Metric.METRIC_BLEU, 'bleu'],
  [Metric.METRIC_ROUGE1, 'rouge1'],
  [Metric.METRIC_ROUGE2, 'rouge2'],
  [Metric.METRIC_ROUGE_L, 'rougeL'],
  [Metric.METRIC_EXACT_MATCH, 'exactMatch'],
  [Metric.METRIC_CHRF, 'chrf'],
  [Metric.METRIC_CHRF_PLUS_PLUS, 'chrfPlusPlus'],
  [Metric.METRIC_METEOR, 'meteor'],
]);
const METRIC_NAMES = [...METRICS.keys()].map((m) => Metric[m]).join(', ');

/** Validates an EvaluateRequest into engine params. */
export function decodeEvaluateRequest(req: EvaluateRequest, deps: RpcDeps, requestId: string): EvaluateParams {
  const { model } = deps.engine.info();
  checkItemsLimit('examples', req.examples, deps.config.limits, 'maxDatasetExamples', 'examples');
  const data = decodeDataSource(req.datasetId, req.examples);
  checkMaxItems('adapters', req.adapters, MAX_EVAL_ADAPTERS);
  checkUnique('adapters', req.adapters);
  const adapters = req.adapters.map((a, i) => parseAdapterRef(`adapters[${i}]`, a));
  const metrics = req.metrics.map((m, i) => checkEnum(`metrics[${i}]`, m, METRICS, METRIC_NAMES));
  checkUnique('metrics', metrics);
  const nPositions = model.nPositions > 0 ? model.nPositions : 1_000_000;
  return {
    requestId,
    data,
    includeBaseModel: req.includeBaseModel || adapters.length === 0,
    adapters,
    metrics: metrics.length > 0 ? metrics : DEFAULT_METRICS,
    generation: decodeSampling(
      req.generation,
      deps.config.limits,
      { maxNewTokens: DEFAULT_EVAL_MAX_NEW_TOKENS, temperature: 0 },
      model.vocabSize,
      'generation',
    ),
    maxExamples: req.maxExamples === undefined ? undefined : checkRange('max_examples', req.maxExamples, { min: 1, max: 100_000 }),
    maxSeqLen: req.maxSeqLen === undefined ? undefined : checkRange('max_seq_len', req.maxSeqLen, { min: 8, max: nPositions }),
    includeExamples: req.includeExamples,
  };
}

/** Engine result -> proto response. */
export function encodeEvaluateResult(r: EvaluateResult): EvaluateResponse {
  return EvaluateResponse.fromPartial({
    results: r.results.map((m) => ({
      adapter: m.adapter,
      metrics: m.metrics,
      examples: m.examples.map((e) => ({ index: e.index, generated: e.generated, metrics: e.metrics })),
      evalSeconds: m.evalSeconds,
    })),
    numExamples: r.numExamples,
    numTokens: r.numTokens,
  });
}

/** grpc-js handler of ModelService.Evaluate. */
export function evaluateHandler(deps: RpcDeps) {
  return unary<EvaluateRequest, EvaluateResponse>(deps, 'Evaluate', async (req, ctx) =>
    encodeEvaluateResult(await deps.engine.evaluate(decodeEvaluateRequest(req, deps, ctx.requestId), ctx.signal)),
  );
}

const PHASES: Record<EvaluateProgress['phase'], EvaluatePhase> = {
  loss: EvaluatePhase.EVALUATE_PHASE_LOSS,
  generation: EvaluatePhase.EVALUATE_PHASE_GENERATION,
};

/** Engine stream item -> proto EvaluateEvent. */
export function encodeEvaluateEvent(e: EngineEvaluateEvent): EvaluateEvent {
  if (e.kind === 'result') return { event: { $case: 'result', value: encodeEvaluateResult(e.result) } };
  const p = e.progress;
  return {
    event: {
      $case: 'progress',
      value: {
        adapter: p.adapter,
        phase: PHASES[p.phase],
        examplesDone: p.examplesDone,
        examplesTotal: p.examplesTotal,
        modelIndex: p.modelIndex,
        numModels: p.numModels,
      },
    },
  };
}

/** grpc-js handler of ModelService.EvaluateStream. */
export function evaluateStreamHandler(deps: RpcDeps) {
  return serverStream<EvaluateRequest, EvaluateEvent>(deps, 'EvaluateStream', async function* (req, ctx) {
    const params = decodeEvaluateRequest(req, deps, ctx.requestId);
    for await (const e of deps.engine.evaluateStream(params, ctx.signal)) yield encodeEvaluateEvent(e);
    // The engine's stream ended without a result: it was aborted; say why.
    if (ctx.signal.aborted) throw ctx.signal.reason;
  });
}
