/**
 * GET /v1/models and GET /v1/models/{model}: the base model and every
 * published adapter, each adapter as `name` (its latest version) and as
 * `name@version` for each version, all usable as the `model` of a completion.
 */
import type { FastifyInstance } from 'fastify';
import { NotFound } from '../common/errors.js';
import type { AdapterInfo } from '../engine/engine-api.js';
import { route, type HttpDeps } from './http-call.js';

/** One entry of the list, as OpenAI shapes it (`created` in epoch seconds). */
export interface OpenAiModel {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
  /** gentune's addition: the model an adapter was trained on (null for the base model). */
  parent: string | null;
}

const seconds = (ms: number) => Math.floor(ms / 1000);

/** The base model first, then each adapter and its versions, oldest first. */
export function modelList(baseModel: string, startedMs: number, adapters: readonly AdapterInfo[]): OpenAiModel[] {
  const out: OpenAiModel[] = [{ id: baseModel, object: 'model', created: seconds(startedMs), owned_by: 'gentune', parent: null }];
  for (const a of adapters) {
    const latest = a.versions.find((v) => v.version === a.latestVersion) ?? a.versions.at(-1);
    if (latest === undefined) continue;
    out.push({ id: a.name, object: 'model', created: seconds(latest.createdAtMs), owned_by: 'gentune', parent: latest.baseModel });
    for (const v of a.versions) {
      out.push({ id: `${a.name}@${v.version}`, object: 'model', created: seconds(v.createdAtMs), owned_by: 'gentune', parent: v.baseModel });
    }
  }
  return out;
}

/** Registers the routes. */
export function modelsRoutes(app: FastifyInstance, deps: HttpDeps): void {
  const startedMs = Date.now();
  const list = async () => modelList(deps.engine.info().model.name, startedMs, await deps.engine.listAdapters());
  app.get(
    '/v1/models',
    route(deps, { operation: 'models.list', role: 'ListAdapters' }, async () => ({ object: 'list', data: await list() })),
  );
  app.get<{ Params: { model: string } }>(
    '/v1/models/:model',
    route(deps, { operation: 'models.retrieve', role: 'ListAdapters' }, async (request) => {
      const id = (request.params as { model: string }).model;
      const found = (await list()).find((m) => m.id === id);
      if (found === undefined) throw new NotFound(`\`model\` ${JSON.stringify(id)} is neither the base model nor a published adapter (GET /v1/models lists them)`);
      return found;
    }),
  );
}
