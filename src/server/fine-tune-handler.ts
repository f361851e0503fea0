/**
 * Fine-tune jobs: FineTune (submit + follow), WatchFineTune, GetFineTuneJob,
 * ListFineTuneJobs, CancelFineTune. Closing a FineTune or WatchFineTune stream
 * only stops following: the job keeps running.
 */
import type {
  CancelFineTuneRequest,
  CancelFineTuneResponse,
  FineTuneEvent,
  FineTuneRequest,
  GetFineTuneJobRequest,
  GetFineTuneJobResponse,
  ListFineTuneJobsRequest,
  ListFineTuneJobsResponse,
  WatchFineTuneRequest,
} from '../gen/gentune/v1/fine_tune.js';
import type { ModelServiceServer } from '../gen/gentune/v1/service.js';
import {
  decodeFineTuneRequest,
  encodeJob,
  encodeJobEvent,
  isTerminal,
  JOB_STATE_NAMES,
  JOB_STATES,
} from './fine-tune-codec.js';
import { serverStream, unary, type CallContext, type RpcDeps } from './rpc.js';
import { checkAdapterName, checkEnum, checkId, checkRange } from './validate.js';

/** Default and maximum of ListFineTuneJobs `limit`. */
export const DEFAULT_JOB_LIMIT = 100;
export const MAX_JOB_LIMIT = 1000;

/** Streams a job's events until its terminal one; on shutdown, fails with the abort reason (UNAVAILABLE). */
async function* follow(deps: RpcDeps, jobId: string, from: number, ctx: CallContext): AsyncGenerator<FineTuneEvent> {
  for await (const event of deps.engine.watchJob(jobId, from, ctx.signal)) {
    yield encodeJobEvent(event);
    if (isTerminal(event)) return;
  }
  // The log ended without a terminal event: we were aborted. Tell the client
  // why (it can resume with WatchFineTune from the next sequence).
  if (ctx.signal.aborted) throw ctx.signal.reason;
}

type FineTuneHandlers = Pick<
  ModelServiceServer,
  'fineTune' | 'watchFineTune' | 'getFineTuneJob' | 'listFineTuneJobs' | 'cancelFineTune'
>;

/** grpc-js handlers of the fine-tune RPCs. */
export function fineTuneHandlers(deps: RpcDeps): FineTuneHandlers {
  return {
    fineTune: serverStream<FineTuneRequest, FineTuneEvent>(deps, 'FineTune', async function* (req, ctx) {
      const spec = decodeFineTuneRequest(req, deps);
      const job = await deps.engine.submitFineTune(spec);
      ctx.log.info({ jobId: job.id, adapter: spec.adapter }, 'fine-tune job submitted');
      yield* follow(deps, job.id, 0, ctx);
    }),

    watchFineTune: serverStream<WatchFineTuneRequest, FineTuneEvent>(deps, 'WatchFineTune', (req, ctx) =>
      follow(deps, checkId('job_id', req.jobId), req.fromSequence, ctx),
    ),

    getFineTuneJob: unary<GetFineTuneJobRequest, GetFineTuneJobResponse>(deps, 'GetFineTuneJob', async (req) => ({
      job: encodeJob(await deps.engine.getJob(checkId('job_id', req.jobId))),
    })),

    listFineTuneJobs: unary<ListFineTuneJobsRequest, ListFineTuneJobsResponse>(deps, 'ListFineTuneJobs', async (req) => {
      const filter = {
        state: checkEnum('state', req.state, JOB_STATES, JOB_STATE_NAMES),
        adapter: req.adapter === '' ? undefined : checkAdapterName('adapter', req.adapter),
        limit: checkRange('limit', req.limit ?? DEFAULT_JOB_LIMIT, { min: 1, max: MAX_JOB_LIMIT }),
      };
      const jobs = await deps.engine.listJobs(filter);
      return { jobs: jobs.map(encodeJob) };
    }),

    cancelFineTune: unary<CancelFineTuneRequest, CancelFineTuneResponse>(deps, 'CancelFineTune', async (req, ctx) => {
      const job = await deps.engine.cancelJob(checkId('job_id', req.jobId));
      ctx.log.info({ jobId: job.id }, 'fine-tune job cancelled');
      return { job: encodeJob(job) };
    }),
  };
}
