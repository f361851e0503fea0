/**
 * Conversions shared by several handlers: sampling settings, inline examples,
 * data sources, adapters and timestamps between protobuf messages (src/gen)
 * and engine types.
 */
import type {
  AdapterInfo,
  AdapterResidency as DomainResidency,
  DataSource,
  Example as DomainExample,
  ChatMessage as DomainChatMessage,
  ResponseFormat as DomainResponseFormat,
  SamplingParams as DomainSampling,
} from '../engine/engine-api.js';
import { InvalidArgument } from '../common/errors.js';
import { checkJsonSchemaSubset, MAX_SCHEMA_CHARS } from '../engine/response-format.js';
import type { LimitsConfig } from '../engine/config.js';
import { Adapter, AdapterMethod, AdapterResidency } from '../gen/gentune/v1/adapters.js';
import { ChatMessage, Example } from '../gen/gentune/v1/datasets.js';
import type { ResponseFormat, SamplingParams } from '../gen/gentune/v1/generate.js';
import { checkSampling, GRPC_SAMPLING, type SamplingDefaults, type SamplingInput } from './sampling-rules.js';
import { checkExactlyOne, checkId, checkMaxItems, checkOneOf, checkRequired, checkSome, parseSafeUint, quote } from './validate.js';

export type { SamplingDefaults } from './sampling-rules.js';

/** Epoch milliseconds -> the Date ts-proto uses for google.protobuf.Timestamp. */
export function toDate(ms: number): Date;
export function toDate(ms: number | undefined): Date | undefined;
export function toDate(ms: number | undefined): Date | undefined {
  return ms === undefined ? undefined : new Date(ms);
}

/** Inline examples accepted by one request. */
export const MAX_INLINE_EXAMPLES = 10_000;

/**
 * Validates proto sampling settings and fills in defaults (the rules are
 * sampling-rules.ts, shared with the OpenAI API).
 * @param vocabSize upper bound of top_k; 0 when not known yet.
 * @param field the request's name for the message (`sampling`, `generation`), in response_format's messages.
 */
export function decodeSampling(
  p: SamplingParams | undefined,
  limits: LimitsConfig,
  defaults: SamplingDefaults,
  vocabSize: number,
  field = 'sampling',
): DomainSampling {
  const input: SamplingInput = {
    maxNewTokens: p?.maxNewTokens,
    temperature: p?.temperature,
    topK: p?.topK,
    topP: p?.topP,
    repetitionPenalty: p?.repetitionPenalty,
    presencePenalty: p?.presencePenalty,
    frequencyPenalty: p?.frequencyPenalty,
    seed: p?.seed === undefined ? undefined : parseSafeUint('seed', p.seed),
    stop: p?.stop,
  };
  const responseFormat = decodeResponseFormat(p?.responseFormat, `${field}.response_format`);
  return { ...checkSampling(input, GRPC_SAMPLING, limits, defaults, vocabSize), ...(responseFormat ? { responseFormat } : {}) };
}

/**
 * Proto ResponseFormat -> the engine's; undefined when unset (free text). The
 * schema text must parse as JSON and stay within the supported subset.
 */
export function decodeResponseFormat(f: ResponseFormat | undefined, field: string): DomainResponseFormat | undefined {
  const format = f?.format;
  if (!format) return undefined;
  if (format.$case === 'jsonObject') return { type: 'json_object' };
  const js = format.value;
  const at = `${field}.json_schema.schema`;
  checkRequired(at, js.schema);
  if (js.schema.length > MAX_SCHEMA_CHARS) throw new InvalidArgument(`\`${at}\` must be at most ${MAX_SCHEMA_CHARS} characters, got ${js.schema.length}`);
  let schema: unknown;
  try {
    schema = JSON.parse(js.schema);
  } catch (err) {
    throw new InvalidArgument(`\`${at}\` must be JSON text (a JSON Schema): ${(err as Error).message}, got ${quote(js.schema)}`);
  }
  checkJsonSchemaSubset(schema, at);
  return { type: 'json_schema', schema: schema as Record<string, unknown>, ...(js.name ? { name: js.name } : {}), strict: js.strict };
}

const ROLES = ['system', 'user', 'assistant'] as const;

/** Most messages in one Generate conversation. */
export const MAX_CHAT_MESSAGES = 256;

/** Validates chat turns: each role one of ROLES. `field` names the list (e.g. `messages`). */
export function decodeChatMessages(field: string, messages: ChatMessage[]): DomainChatMessage[] {
  checkMaxItems(field, messages, MAX_CHAT_MESSAGES);
  return messages.map((m, j): DomainChatMessage => ({ role: checkOneOf(`${field}[${j}].role`, m.role, ROLES), content: m.content }));
}

/** Validates inline examples: each uses exactly one shape. `field` names the list. */
export function decodeExamples(field: string, examples: Example[]): DomainExample[] {
  checkMaxItems(field, examples, MAX_INLINE_EXAMPLES);
  return examples.map((ex, i): DomainExample => {
    const at = `${field}[${i}]`;
    const shape = checkExactlyOne({
      [`${at}.prompt`]: ex.prompt !== '' || ex.completion !== '',
      [`${at}.messages`]: ex.messages.length > 0,
      [`${at}.text`]: ex.text !== '',
    });
    if (shape.endsWith('.prompt')) {
      checkRequired(`${at}.completion`, ex.completion);
      return { prompt: ex.prompt, completion: ex.completion };
    }
    if (shape.endsWith('.text')) return { text: ex.text };
    const messages = decodeChatMessages(`${at}.messages`, ex.messages);
    checkSome(`${at}.messages`, messages, (m) => m.role === 'assistant', 'a message with role "assistant"', (ms) => ms.map((m) => m.role));
    return { messages };
  });
}

/** Exactly one of `dataset_id` and `examples`: an uploaded dataset or inline examples. */
export function decodeDataSource(datasetId: string, examples: Example[]): DataSource {
  const which = checkExactlyOne({ dataset_id: datasetId !== '', examples: examples.length > 0 });
  if (which === 'dataset_id') return { datasetId: checkId('dataset_id', datasetId) };
  return { examples: decodeExamples('examples', examples) };
}

/** The inverse of {@link decodeDataSource}, for echoing a stored request. */
export function encodeDataSource(source: DataSource): { datasetId: string; examples: Example[] } {
  if ('datasetId' in source) return { datasetId: source.datasetId, examples: [] };
  return {
    datasetId: '',
    examples: source.examples.map((ex) =>
      Example.fromPartial(
        'messages' in ex
          ? { messages: ex.messages.map((m) => ChatMessage.fromPartial(m)) }
          : 'text' in ex
            ? { text: ex.text }
            : { prompt: ex.prompt, completion: ex.completion },
      ),
    ),
  };
}

const RESIDENCY: Record<DomainResidency, AdapterResidency> = {
  stored: AdapterResidency.ADAPTER_RESIDENCY_STORED,
  loaded: AdapterResidency.ADAPTER_RESIDENCY_LOADED,
  pinned: AdapterResidency.ADAPTER_RESIDENCY_PINNED,
};

/** Engine adapter -> proto Adapter. */
export function encodeAdapter(a: AdapterInfo): Adapter {
  return Adapter.fromPartial({
    name: a.name,
    latestVersion: a.latestVersion,
    versions: a.versions.map((v) => ({
      version: v.version,
      baseModel: v.baseModel,
      method: v.method === 'lora' ? AdapterMethod.ADAPTER_METHOD_LORA : AdapterMethod.ADAPTER_METHOD_LAST_LAYERS,
      r: v.r,
      loraAlpha: v.loraAlpha,
      targetModules: v.targetModules,
      sizeBytes: v.sizeBytes,
      residency: RESIDENCY[v.residency],
      createdAt: toDate(v.createdAtMs),
      lastUsedAt: toDate(v.lastUsedAtMs),
      jobId: v.jobId ?? '',
      requestsServed: v.requestsServed,
      brokenReason: v.broken ?? '',
    })),
    aliases: a.aliases.map((x) => ({ alias: x.alias, version: x.version, updatedAt: toDate(x.updatedAtMs) })),
  });
}
