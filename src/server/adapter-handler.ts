/** Adapters: ListAdapters, LoadAdapter, UnloadAdapter, DeleteAdapter, SetAdapterAlias. */
import type {
  DeleteAdapterRequest,
  DeleteAdapterResponse,
  ListAdaptersRequest,
  ListAdaptersResponse,
  LoadAdapterRequest,
  LoadAdapterResponse,
  SetAdapterAliasRequest,
  SetAdapterAliasResponse,
  UnloadAdapterRequest,
  UnloadAdapterResponse,
} from '../gen/gentune/v1/adapters.js';
import type { ModelServiceServer } from '../gen/gentune/v1/service.js';
import { encodeAdapter } from './convert.js';
import { unary, type RpcDeps } from './rpc.js';
import { checkAdapterName, checkAliasName, checkRange, parseAdapterRef } from './validate.js';

type AdapterHandlers = Pick<ModelServiceServer, 'listAdapters' | 'loadAdapter' | 'unloadAdapter' | 'deleteAdapter' | 'setAdapterAlias'>;

/** grpc-js handlers of the adapter RPCs. */
export function adapterHandlers(deps: RpcDeps): AdapterHandlers {
  const { engine } = deps;
  return {
    listAdapters: unary<ListAdaptersRequest, ListAdaptersResponse>(deps, 'ListAdapters', async () => ({
      adapters: (await engine.listAdapters()).map(encodeAdapter),
    })),

    loadAdapter: unary<LoadAdapterRequest, LoadAdapterResponse>(deps, 'LoadAdapter', async (req) => ({
      adapter: encodeAdapter(await engine.loadAdapter(parseAdapterRef('adapter', req.adapter), req.pin)),
    })),

    unloadAdapter: unary<UnloadAdapterRequest, UnloadAdapterResponse>(deps, 'UnloadAdapter', async (req) => ({
      adapter: encodeAdapter(await engine.unloadAdapter(parseAdapterRef('adapter', req.adapter))),
    })),

    deleteAdapter: unary<DeleteAdapterRequest, DeleteAdapterResponse>(deps, 'DeleteAdapter', async (req, ctx) => {
      const ref = parseAdapterRef('adapter', req.adapter);
      await engine.deleteAdapter(ref);
      ctx.log.info({ adapter: ref }, 'adapter deleted');
      return {};
    }),

    setAdapterAlias: unary<SetAdapterAliasRequest, SetAdapterAliasResponse>(deps, 'SetAdapterAlias', async (req, ctx) => {
      const name = checkAdapterName('adapter', req.adapter);
      const alias = checkAliasName('alias', req.alias);
      const version = checkRange('version', req.version, { min: 1, max: 999_999_999 });
      const adapter = encodeAdapter(await engine.setAdapterAlias(name, alias, version));
      ctx.log.info({ adapter: `${name}@${alias}`, version }, 'adapter alias moved');
      return { adapter };
    }),
  };
}
