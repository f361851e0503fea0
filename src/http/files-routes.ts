/**
 * The OpenAI Files API, for fine-tuning data: POST /v1/files (multipart
 * `file` + `purpose`), GET /v1/files, GET /v1/files/{id}, DELETE
 * /v1/files/{id} and GET /v1/files/{id}/content. A file is a gentune dataset
 * (one JSONL of prompt/completion, chat or text lines, OpenAI's chat format
 * included, see src/training/data/sft-example.ts); its id is the dataset id,
 * so the same id works as `training_file` here and as `dataset_id` on gRPC.
 *
 * The upload streams the file part's chunks into engine.uploadDataset as they
 * arrive, so memory stays at a chunk; over limits.maxUploadBytes it is 413
 * naming the limit, and nothing is stored on any error (the store publishes
 * only after the last chunk, and the chunk stream below only ends once every
 * other form field was read and checked).
 */
import multipart from '@fastify/multipart';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { basename } from 'node:path';
import { z } from 'zod';
import { InvalidArgument, NotFound } from '../common/errors.js';
import type { DatasetInfo } from '../engine/engine-api.js';
import { limitLabel } from '../engine/limit-label.js';
import { checkId, checkMaxLength, checkPrintable, checkRequired } from '../server/validate.js';
import { RawReply, route, type HttpDeps } from './http-call.js';
import { PayloadTooLarge } from './http-error.js';
import { parseRequest } from './zod-request.js';

/** The one `purpose` gentune stores files for. */
export const FILE_PURPOSE = 'fine-tune';

/** A file as OpenAI shapes it, with gentune's dataset facts under `gentune`. */
export interface OpenAiFile {
  id: string;
  object: 'file';
  /** Size as uploaded, in bytes. */
  bytes: number;
  /** Epoch seconds. */
  created_at: number;
  filename: string;
  purpose: typeof FILE_PURPOSE;
  /** Lines are validated during the upload, so a stored file is always processed. */
  status: 'processed';
  status_details: null;
  gentune: { format: DatasetInfo['format']; num_examples: number; sha256: string };
}

/** Engine dataset -> OpenAI file object. */
export function fileObject(d: DatasetInfo): OpenAiFile {
  return {
    id: d.id,
    object: 'file',
    bytes: d.sizeBytes,
    created_at: Math.floor(d.createdAtMs / 1000),
    filename: d.name,
    purpose: FILE_PURPOSE,
    status: 'processed',
    status_details: null,
    gentune: { format: d.format, num_examples: d.numExamples, sha256: d.sha256 },
  };
}

/** Most form fields besides `file` (`purpose`, and room for a client's extras to be refused by name). */
const MAX_FIELDS = 8;
/** Longest form field value, in bytes: `purpose` is a word. */
const MAX_FIELD_BYTES = 1024;

const ListQuery = z.strictObject({
  purpose: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(10_000).optional(),
  after: z.string().optional(),
  order: z.enum(['asc', 'desc']).optional(),
});

function checkPurpose(value: string | undefined): void {
  if (value === undefined) throw new InvalidArgument('`purpose` is required: send the form field purpose=fine-tune');
  if (value !== FILE_PURPOSE) throw new InvalidArgument(`\`purpose\` must be "${FILE_PURPOSE}" (gentune stores fine-tuning data only), got ${JSON.stringify(value.slice(0, 80))}`);
}

/** The name a file is stored under: the client's file name without folders, checked like a dataset name. */
function fileName(filename: string | undefined): string {
  const name = basename((filename ?? '').replace(/\\/g, '/')) || 'file.jsonl';
  checkRequired('file.filename', name);
  checkMaxLength('file.filename', name, 128);
  checkPrintable('file.filename', name);
  if (name === '..' || name === '.') throw new InvalidArgument(`\`file.filename\` must be a file name, got ${JSON.stringify(name)}`);
  return name;
}

/** Multipart errors, in the API's terms (the plugin's own are 406/413 without a body we control). */
function multipartError(err: unknown, maxUploadBytes: number): unknown {
  const code = (err as { code?: string }).code;
  if (code === 'FST_REQ_FILE_TOO_LARGE') {
    return new PayloadTooLarge(`\`file\` must be at most ${limitLabel('maxUploadBytes', maxUploadBytes)} bytes, got more than that`);
  }
  if (code === 'FST_INVALID_MULTIPART_CONTENT_TYPE') return new InvalidArgument('POST /v1/files takes multipart/form-data with the fields `file` and `purpose`');
  if (code === 'FST_FILES_LIMIT') return new InvalidArgument('`file` must be sent once: one file per upload');
  if (code === 'FST_FIELDS_LIMIT' || code === 'FST_PARTS_LIMIT') return new InvalidArgument(`the form must have at most ${MAX_FIELDS} fields besides \`file\``);
  if (code === 'FST_MP_PREMATURE_CLOSE') return new InvalidArgument('the upload ended before the multipart body was complete');
  return err;
}

/** POST /v1/files: streams the `file` part into the dataset store (see the file comment). */
async function createFile(deps: HttpDeps, request: FastifyRequest, signal: AbortSignal): Promise<OpenAiFile> {
  const maxBytes = deps.config.limits.maxUploadBytes;
  const parts = request.parts()[Symbol.asyncIterator]();
  let purpose: string | undefined;
  const field = (name: string, value: unknown): void => {
    if (name !== 'purpose') throw new InvalidArgument(`\`${name.slice(0, 64)}\` is not supported by gentune (POST /v1/files takes \`file\` and \`purpose\`)`);
    purpose = String(value);
  };
  // Fields that come before the file are checked before a byte is stored.
  let next = await parts.next();
  while (!next.done && next.value.type === 'field') {
    field(next.value.fieldname, next.value.value);
    next = await parts.next();
  }
  if (next.done) throw new InvalidArgument('`file` is required: send the JSONL as the multipart field file');
  const part = next.value;
  // The loop above stops at the first file part; this tells the compiler so.
  if (part.type !== 'file') throw new InvalidArgument('`file` is required');
  if (part.fieldname !== 'file') throw new InvalidArgument(`\`${part.fieldname.slice(0, 64)}\` is not supported by gentune: send the JSONL as the multipart field \`file\``);
  if (purpose !== undefined) checkPurpose(purpose);
  const name = fileName(part.filename);
  const stream = part.file as AsyncIterable<Buffer>;
  // What our chunk stream threw: the worker boundary carries domain errors
  // only, so the original (a 413, a multipart error) is rethrown from here.
  let failure: unknown;
  async function* chunks(): AsyncGenerator<Uint8Array> {
    try {
      let total = 0;
      for await (const chunk of stream) {
        total += chunk.length;
        if (total > maxBytes) throw multipartError({ code: 'FST_REQ_FILE_TOO_LARGE' }, maxBytes);
        yield chunk;
      }
      // The fields after the file: the dataset is published only if they pass.
      for (let rest = await parts.next(); !rest.done; rest = await parts.next()) {
        if (rest.value.type === 'file') throw new InvalidArgument('`file` must be sent once: one file per upload');
        field(rest.value.fieldname, rest.value.value);
      }
      checkPurpose(purpose);
    } catch (err) {
      failure = multipartError(err, maxBytes);
      throw failure;
    }
  }
  try {
    const info = await deps.engine.uploadDataset({ name, format: 'auto' }, chunks(), signal);
    return fileObject(info);
  } catch (err) {
    throw failure ?? err;
  }
}

/** Registers the routes, in a scope of their own that parses multipart bodies. */
export async function filesRoutes(app: FastifyInstance, deps: HttpDeps): Promise<void> {
  const maxUploadBytes = deps.config.limits.maxUploadBytes;
  await app.register(async (scope) => {
    await scope.register(multipart, {
      // One byte over the limit is enough to know; busboy then discards the
      // rest of the body, which it still reads, so the client gets our 413.
      limits: { fileSize: maxUploadBytes + 1, files: 1, fields: MAX_FIELDS, fieldSize: MAX_FIELD_BYTES, parts: MAX_FIELDS + 1 },
      throwFileSizeLimit: true,
    });
    scope.post(
      '/v1/files',
      route(deps, { operation: 'files.create', role: 'UploadDataset' }, async (request, ctx) => {
        try {
          const file = await createFile(deps, request, ctx.signal);
          ctx.log.info({ datasetId: file.id, bytes: file.bytes }, 'file stored');
          return file;
        } catch (err) {
          throw multipartError(err, maxUploadBytes);
        }
      }),
    );
  });

  app.get<{ Querystring: unknown }>(
    '/v1/files',
    route(deps, { operation: 'files.list', role: 'ListDatasets' }, async (request: FastifyRequest<{ Querystring: unknown }>) => {
      const q = parseRequest(ListQuery, request.query);
      // Newest first from the engine; OpenAI's default order is desc too.
      let files = (await deps.engine.listDatasets()).map(fileObject);
      if (q.purpose !== undefined && q.purpose !== FILE_PURPOSE) files = [];
      if (q.order === 'asc') files.reverse();
      if (q.after !== undefined) {
        const at = files.findIndex((f) => f.id === q.after);
        if (at < 0) throw new InvalidArgument(`\`after\` ${JSON.stringify(q.after.slice(0, 80))}: no such file`);
        files = files.slice(at + 1);
      }
      const limit = q.limit ?? 10_000;
      return { object: 'list', data: files.slice(0, limit), has_more: files.length > limit };
    }),
  );

  const find = async (id: string): Promise<DatasetInfo> => {
    checkId('file_id', id);
    const found = (await deps.engine.listDatasets()).find((d) => d.id === id);
    if (!found) throw new NotFound(`\`file_id\` ${JSON.stringify(id)}: no such file (GET /v1/files lists them)`);
    return found;
  };

  app.get<{ Params: { id: string } }>(
    '/v1/files/:id',
    route(deps, { operation: 'files.retrieve', role: 'ListDatasets' }, async (request: FastifyRequest<{ Params: { id: string } }>) =>
      fileObject(await find(request.params.id)),
    ),
  );

  app.get<{ Params: { id: string } }>(
    '/v1/files/:id/content',
    route(deps, { operation: 'files.content', role: 'ListDatasets' }, async (request: FastifyRequest<{ Params: { id: string } }>) => {
      const id = (await find(request.params.id)).id;
      return new RawReply('application/octet-stream', Buffer.from(await deps.engine.datasetContent(id)));
    }),
  );

  app.delete<{ Params: { id: string } }>(
    '/v1/files/:id',
    route(deps, { operation: 'files.delete', role: 'DeleteDataset' }, async (request: FastifyRequest<{ Params: { id: string } }>, ctx) => {
      const id = checkId('file_id', request.params.id);
      // FailedPrecondition (409) while a queued or running job reads it.
      await deps.engine.deleteDataset(id);
      ctx.log.info({ datasetId: id }, 'file deleted');
      return { id, object: 'file', deleted: true };
    }),
  );
}
