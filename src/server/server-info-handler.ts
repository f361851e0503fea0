/** GetServerInfo: answered even before the model is loaded (ready = false). */
import type { ServerInfo } from '../engine/engine-api.js';
import type { GetServerInfoRequest, GetServerInfoResponse } from '../gen/gentune/v1/server_info.js';
import { GetServerInfoResponse as Response } from '../gen/gentune/v1/server_info.js';
import { toDate } from './convert.js';
import { unary, type RpcDeps } from './rpc.js';

/** Engine info -> proto response (tfjs's `numBytesInGPU` is ts-proto's `numBytesInGpu`). */
export function encodeServerInfo(info: ServerInfo): GetServerInfoResponse {
  const { deviceMemory: m, ...rest } = info;
  return Response.fromPartial({
    ...rest,
    startedAt: toDate(info.startedAtMs),
    deviceMemory: {
      numTensors: m.numTensors,
      numDataBuffers: m.numDataBuffers,
      numBytes: m.numBytes,
      numBytesInGpu: m.numBytesInGPU,
      numBytesAllocatedInGpu: m.numBytesAllocatedInGPU,
      unreliable: m.unreliable ?? false,
    },
  });
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
