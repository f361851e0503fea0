/**
 * The OpenAI fine-tuning API onto gentune's jobs: POST /v1/fine_tuning/jobs,
 * GET /v1/fine_tuning/jobs (paginated), GET /v1/fine_tuning/jobs/{id},
 * POST /v1/fine_tuning/jobs/{id}/cancel, GET .../{id}/events (newest first,
 * from the job's durable event log) and GET .../{id}/checkpoints. Request
 * decoding is fine-tuning-request.ts, the shapes fine-tuning-shapes.ts;
 * roles are the gRPC twins' (FineTune and CancelFineTune need admin).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { InvalidArgument } from '../common/errors.js';
import { checkId } from '../server/validate.js';
import { MAX_JOB_LIMIT } from '../server/fine-tune-handler.js';
import { decodeCreateJob, renameFields } from './fine-tuning-request.js';
import { checkpointObjects, eventObject, eventSequence, jobObject } from './fine-tuning-shapes.js';
import { route, type HttpDeps } from './http-call.js';
import { parseRequest } from './zod-request.js';

/** Default page size of the lists, as OpenAI's (20 jobs, 20 events, 10 checkpoints). */
const DEFAULT_LIMIT = 20;
const DEFAULT_CHECKPOINT_LIMIT = 10;
/** Largest page, as OpenAI's. */
const MAX_LIMIT = 100;

const PageQuery = z.strictObject({
  after: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(MAX_LIMIT).optional(),
});

type IdRequest = FastifyRequest<{ Params: { id: string }; Querystring: unknown }>;

/** One page of `items` (already in list order) after the item whose id is `after`. */
function page<T>(items: readonly T[], q: z.output<typeof PageQuery>, defaultLimit: number, position: (after: string) => number) {
  const start = q.after === undefined ? 0 : position(q.after) + 1;
  const limit = q.limit ?? defaultLimit;
  const rest = items.slice(start);
  return { object: 'list' as const, data: rest.slice(0, limit), has_more: rest.length > limit };
}

function unknownCursor(after: string): never {
  throw new InvalidArgument(`\`after\` ${JSON.stringify(after.slice(0, 80))}: not an id of this list`);
}

/** Registers the routes. */
export function fineTuningRoutes(app: FastifyInstance, deps: HttpDeps): void {
  const served = () => deps.engine.info().model.name;
  const getJob = async (id: string) => {
    try {
      return await deps.engine.getJob(checkId('fine_tuning_job_id', id));
    } catch (err) {
      throw renameFields(err, 'hyperparameters');
    }
  };

  app.post(
    '/v1/fine_tuning/jobs',
    route(deps, { operation: 'fine_tuning.jobs.create', role: 'FineTune' }, async (request, ctx) => {
      const { spec, hyperparametersField } = decodeCreateJob(request.body, deps);
      let job;
      try {
        job = await deps.engine.submitFineTune(spec);
      } catch (err) {
        // The engine names proto fields too (`dataset_id` "x": no such dataset).
        throw renameFields(err, hyperparametersField);
      }
      ctx.log.info({ jobId: job.id, adapter: spec.adapter }, 'fine-tune job submitted');
      return jobObject(job, served());
    }),
  );

  app.get<{ Querystring: unknown }>(
    '/v1/fine_tuning/jobs',
    route(deps, { operation: 'fine_tuning.jobs.list', role: 'ListFineTuneJobs' }, async (request: FastifyRequest<{ Querystring: unknown }>) => {
      const q = parseRequest(PageQuery, request.query);
      // Newest first, as OpenAI lists; the engine keeps at most MAX_JOB_LIMIT in one list.
      const jobs = (await deps.engine.listJobs({ limit: MAX_JOB_LIMIT })).map((j) => jobObject(j, served()));
      return page(jobs, q, DEFAULT_LIMIT, (after) => {
        const at = jobs.findIndex((j) => j.id === after);
        return at < 0 ? unknownCursor(after) : at;
      });
    }),
  );

  app.get<{ Params: { id: string } }>(
    '/v1/fine_tuning/jobs/:id',
    route(deps, { operation: 'fine_tuning.jobs.retrieve', role: 'GetFineTuneJob' }, async (request: IdRequest) =>
      jobObject(await getJob(request.params.id), served()),
    ),
  );

  app.post<{ Params: { id: string } }>(
    '/v1/fine_tuning/jobs/:id/cancel',
    route(deps, { operation: 'fine_tuning.jobs.cancel', role: 'CancelFineTune' }, async (request: IdRequest, ctx) => {
      const id = (await getJob(request.params.id)).id;
      // FailedPrecondition (409) when the job already finished.
      const job = await deps.engine.cancelJob(id);
      ctx.log.info({ jobId: job.id }, 'fine-tune job cancelled');
      return jobObject(job, served());
    }),
  );

  app.get<{ Params: { id: string } }>(
    '/v1/fine_tuning/jobs/:id/events',
    route(deps, { operation: 'fine_tuning.jobs.list_events', role: 'WatchFineTune' }, async (request: IdRequest) => {
      const q = parseRequest(PageQuery, request.query);
      const id = (await getJob(request.params.id)).id;
      // Newest first, as OpenAI lists events: a poller reads the latest with limit alone.
      const events = (await deps.engine.jobEvents(id)).reverse();
      return page(events.map(eventObject), q, DEFAULT_LIMIT, (after) => {
        const sequence = eventSequence(id, after);
        const at = sequence === undefined ? -1 : events.findIndex((e) => e.sequence === sequence);
        return at < 0 ? unknownCursor(after) : at;
      });
    }),
  );

  app.get<{ Params: { id: string } }>(
    '/v1/fine_tuning/jobs/:id/checkpoints',
    route(deps, { operation: 'fine_tuning.jobs.checkpoints.list', role: 'GetFineTuneJob' }, async (request: IdRequest) => {
      const q = parseRequest(PageQuery, request.query);
      const checkpoints = checkpointObjects(await getJob(request.params.id));
      return page(checkpoints, q, DEFAULT_CHECKPOINT_LIMIT, (after) => {
        const at = checkpoints.findIndex((c) => c.id === after);
        return at < 0 ? unknownCursor(after) : at;
      });
    }),
  );
}
