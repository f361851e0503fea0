/**
 * Datasets: UploadDataset (client stream: metadata first, then data chunks),
 * ListDatasets, DeleteDataset. The upload size limit is enforced here, while
 * the bytes stream through, so the engine never buffers an oversized upload.
 */
import { InvalidArgument, ResourceExhausted } from '../common/errors.js';
import { limitLabel } from '../engine/limit-label.js';
import type { DatasetFormat as DomainFormat, DatasetInfo, DatasetUploadMeta } from '../engine/engine-api.js';
import {
  Dataset,
  DatasetFormat,
  type DeleteDatasetRequest,
  type DeleteDatasetResponse,
  type ListDatasetsRequest,
  type ListDatasetsResponse,
  type UploadDatasetChunk,
  type UploadDatasetMetadata,
} from '../gen/gentune/v1/datasets.js';
import type { ModelServiceServer } from '../gen/gentune/v1/service.js';
import { toDate } from './convert.js';
import { clientStream, unary, type RpcDeps } from './rpc.js';
import { checkEnum, checkId, checkMaxLength, checkNoPath, checkPrintable, checkRequired } from './validate.js';

/** Largest `data` chunk, in bytes (1 MiB; gRPC's default message limit is 4 MiB). */
export const MAX_CHUNK_BYTES = 1024 * 1024;

const FORMATS = new Map<number, DomainFormat | 'auto'>([
  [DatasetFormat.DATASET_FORMAT_UNSPECIFIED, 'auto'],
  [DatasetFormat.DATASET_FORMAT_PROMPT_COMPLETION, 'prompt_completion'],
  [DatasetFormat.DATASET_FORMAT_CHAT, 'chat'],
  [DatasetFormat.DATASET_FORMAT_TEXT, 'text'],
]);
const FORMAT_NAMES = [...FORMATS.keys()].map((f) => DatasetFormat[f]).join(', ');
const FORMAT_TO_PROTO: Record<DomainFormat, DatasetFormat> = {
  prompt_completion: DatasetFormat.DATASET_FORMAT_PROMPT_COMPLETION,
  chat: DatasetFormat.DATASET_FORMAT_CHAT,
  text: DatasetFormat.DATASET_FORMAT_TEXT,
};

/** Validates the first message's metadata. */
export function decodeUploadMetadata(meta: UploadDatasetMetadata): DatasetUploadMeta {
  const name = checkRequired('name', meta.name);
  checkMaxLength('name', name, 128);
  checkNoPath('name', name);
  checkPrintable('name', name);
  return { name, format: checkEnum('format', meta.format, FORMATS, FORMAT_NAMES) };
}

/** Engine dataset -> proto Dataset. */
export function encodeDataset(d: DatasetInfo): Dataset {
  return Dataset.fromPartial({ ...d, format: FORMAT_TO_PROTO[d.format], createdAt: toDate(d.createdAtMs) });
}

/** The `data` payloads after the first message, checked for shape and size as they arrive. */
async function* dataChunks(rest: AsyncIterator<UploadDatasetChunk>, maxBytes: number): AsyncGenerator<Uint8Array> {
  let total = 0;
  for (let index = 1; ; index++) {
    const next = await rest.next();
    if (next.done) return;
    const payload = next.value.payload;
    if (payload === undefined) continue;
    if (payload.$case === 'metadata') {
      throw new InvalidArgument(`\`metadata\` must only be in the first message, got it in message ${index + 1}`);
    }
    if (payload.value.length > MAX_CHUNK_BYTES) {
      throw new InvalidArgument(`\`data\` must be at most ${MAX_CHUNK_BYTES} bytes per message, got ${payload.value.length} in message ${index + 1}`);
    }
    total += payload.value.length;
    if (total > maxBytes) {
      throw new ResourceExhausted(`the upload must be at most ${limitLabel('maxUploadBytes', maxBytes)} bytes, got more than that`);
    }
    yield payload.value;
  }
}

type DatasetHandlers = Pick<ModelServiceServer, 'uploadDataset' | 'listDatasets' | 'deleteDataset'>;

/** grpc-js handlers of the dataset RPCs. */
export function datasetHandlers(deps: RpcDeps): DatasetHandlers {
  const { engine } = deps;
  return {
    uploadDataset: clientStream<UploadDatasetChunk, Dataset>(deps, 'UploadDataset', async (requests, ctx) => {
      const it = requests[Symbol.asyncIterator]();
      const first = await it.next();
      const payload = first.done ? undefined : first.value.payload;
      if (payload?.$case !== 'metadata') {
        const got = first.done ? 'an empty stream' : payload ? '`data`' : 'an empty message';
        throw new InvalidArgument(`the first message must set \`metadata\`, got ${got}`);
      }
      const meta = decodeUploadMetadata(payload.value);
      const info = await engine.uploadDataset(meta, dataChunks(it, deps.config.limits.maxUploadBytes), ctx.signal);
      ctx.log.info({ datasetId: info.id, examples: info.numExamples, bytes: info.sizeBytes }, 'dataset stored');
      return encodeDataset(info);
    }),

    listDatasets: unary<ListDatasetsRequest, ListDatasetsResponse>(deps, 'ListDatasets', async () => ({
      datasets: (await engine.listDatasets()).map(encodeDataset),
    })),

    deleteDataset: unary<DeleteDatasetRequest, DeleteDatasetResponse>(deps, 'DeleteDataset', async (req, ctx) => {
      const id = checkId('dataset_id', req.datasetId);
      await engine.deleteDataset(id);
      ctx.log.info({ datasetId: id }, 'dataset deleted');
      return {};
    }),
  };
}
