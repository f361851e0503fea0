/** `gentune info`: model, backend, device and its memory, limits, version and health. */
import { Command } from 'commander';
import { GetServerInfoResponse } from '../gen/gentune/v1/server_info.js';
import { toProto3Json } from '../client/proto-json.js';
import { clientOptions, fmtBytes, printJson, withClient, type ClientOptions } from './output.js';

export function infoCommand(): Command {
  return clientOptions(new Command('info').description('show the served model, backend, limits and health')).action(
    async (opts: ClientOptions) => {
      await withClient(opts, async (client) => {
        const [info, health] = await Promise.all([
          client.getServerInfo({ timeoutMs: opts.timeout }),
          client.checkHealth('', { timeoutMs: opts.timeout }),
        ]);
        if (opts.json) {
          printJson({ ...(toProto3Json(GetServerInfoResponse, 'gentune.v1.GetServerInfoResponse', info) as object), health });
          return;
        }
        const m = info.model;
        const l = info.limits;
        const mem = info.deviceMemory;
        const gpu = mem?.numBytesInGpu === undefined ? '' : `, GPU ${fmtBytes(mem.numBytesInGpu)} in use of ${fmtBytes(mem.numBytesAllocatedInGpu ?? 0)} allocated`;
        process.stdout.write(
          [
            `gentune ${info.version} at ${opts.addr}: ${health}${info.ready ? '' : ' (model loading)'}`,
            `model    ${m?.name} (${m?.architecture}, ${m?.nLayer} layers, ${m?.nHead} heads${m && m.nKvHead !== m.nHead ? ` / ${m.nKvHead} key-value` : ''}, n_embd ${m?.nEmbd}, context ${m?.nPositions}, vocab ${m?.vocabSize}, ${m?.numParameters} parameters${m?.hasChatTemplate ? ', chat template' : ''})`,
            `backend  ${info.backend} (${info.device || '-'})`,
            `memory   ${mem?.numTensors ?? 0} tensors, ${fmtBytes(mem?.numBytes ?? 0)}${gpu}`,
            `limits   ${l?.maxConcurrentStreams} streams, prompt ${l?.maxPromptTokens} tokens, max_new_tokens ${l?.maxNewTokens}, ` +
              `upload ${fmtBytes(l?.maxUploadBytes ?? 0)}, batch ${l?.maxBatchSize}, queue ${l?.maxQueue}, ` +
              `${l?.maxConcurrentJobs} fine-tune job(s) at once`,
            `started  ${info.startedAt?.toISOString() ?? '-'}`,
          ].join('\n') + '\n',
        );
      });
    },
  );
}
