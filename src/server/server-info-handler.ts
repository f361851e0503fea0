/** GetServerInfo: answered even before the model is loaded (ready = false). */
import type { ServerInfo } from '../engine/engine-api.js';
import type { GetServerInfoRequest, GetServerInfoResponse } from '../gen/gentune/v1/server_info.js';
import { GetServerInfoResponse as Response } from '../gen/gentune/v1/server_info.js';
import { toDate } from './convert.js';
import { unary, type RpcDeps } from './rpc.js';

/** Engine info -> proto response. */
export function encodeServerInfo(info: ServerInfo): GetServerInfoResponse {
  return Response.fromPartial({ ...info, startedAt: toDate(info.startedAtMs) });
}

/** grpc-js handler of ModelService.GetServerInfo. */
export function serverInfoHandler(deps: RpcDeps) {
  return unary<GetServerInfoRequest, GetServerInfoResponse>(
    deps,
    'GetServerInfo',
    async () => encodeServerInfo(deps.engine.info()),
    { requiresReady: false },
  );
}
