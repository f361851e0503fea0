/** Adapters: ListAdapters, LoadAdapter, UnloadAdapter, DeleteAdapter. */
import type {
  DeleteAdapterRequest,
  DeleteAdapterResponse,
  ListAdaptersRequest,
  ListAdaptersResponse,
  LoadAdapterRequest,
  LoadAdapterResponse,
  UnloadAdapterRequest,
  UnloadAdapterResponse,
} from '../gen/gentune/v1/adapters.js';
import type { ModelServiceServer } from '../gen/gentune/v1/service.js';
import { encodeAdapter } from './convert.js';
import { unary, type RpcDeps } from './rpc.js';
import { parseAdapterRef } from './validate.js';

type AdapterHandlers = Pick<ModelServiceServer, 'listAdapters' | 'loadAdapter' | 'unloadAdapter' | 'deleteAdapter'>;

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
  };
}
