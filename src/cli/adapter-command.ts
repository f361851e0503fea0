/** `gentune adapters list|load|unload|delete`. */
import { Command } from 'commander';
import { Adapter, AdapterMethod, AdapterResidency } from '../gen/gentune/v1/adapters.js';
import { clientOptions, fmtBytes, printJson, printProto, table, withClient, type ClientOptions } from './output.js';

const HEADER = ['ADAPTER', 'METHOD', 'RANK', 'RESIDENCY', 'SIZE', 'BASE', 'REQUESTS', 'LAST USED'];

function rows(adapters: Adapter[]): string[][] {
  return adapters.flatMap((a) =>
    a.versions.map((v) => [
      `${a.name}@${v.version}${v.version === a.latestVersion ? ' (latest)' : ''}`,
      AdapterMethod[v.method]?.replace('ADAPTER_METHOD_', '').toLowerCase() ?? '-',
      v.r ? String(v.r) : '-',
      v.brokenReason ? 'broken' : (AdapterResidency[v.residency]?.replace('ADAPTER_RESIDENCY_', '').toLowerCase() ?? '-'),
      fmtBytes(v.sizeBytes),
      v.baseModel,
      String(v.requestsServed),
      v.lastUsedAt?.toISOString() ?? '-',
    ]),
  );
}

function print(adapter: Adapter, opts: ClientOptions): void {
  if (opts.json) printProto(Adapter, 'gentune.v1.Adapter', adapter);
  else process.stdout.write(table(HEADER, rows([adapter])));
}

export function adaptersCommand(): Command {
  const adapters = new Command('adapters').description('stored adapters and their residency');
  adapters.addCommand(
    clientOptions(new Command('list').description('list adapters and versions')).action(async (opts: ClientOptions) => {
      await withClient(opts, async (client) => {
        const list = await client.listAdapters({ timeoutMs: opts.timeout });
        if (opts.json) list.forEach((a) => printProto(Adapter, 'gentune.v1.Adapter', a));
        else process.stdout.write(table(HEADER, rows(list)));
      });
    }),
  );
  adapters.addCommand(
    clientOptions(
      new Command('load').description('load an adapter ahead of use').argument('<name[@version]>').option('--pin', 'keep it resident until unloaded'),
    ).action(async (ref: string, opts: ClientOptions & { pin?: boolean }) => {
      await withClient(opts, async (client) => print(await client.loadAdapter(ref, opts.pin ?? false, { timeoutMs: opts.timeout }), opts));
    }),
  );
  adapters.addCommand(
    clientOptions(new Command('unload').description('unpin and free an adapter').argument('<name[@version]>')).action(
      async (ref: string, opts: ClientOptions) => {
        await withClient(opts, async (client) => print(await client.unloadAdapter(ref, { timeoutMs: opts.timeout }), opts));
      },
    ),
  );
  adapters.addCommand(
    clientOptions(new Command('delete').description('delete an adapter (all versions) or one version').argument('<name[@version]>')).action(
      async (ref: string, opts: ClientOptions) => {
        await withClient(opts, async (client) => {
          await client.deleteAdapter(ref, { timeoutMs: opts.timeout });
          if (opts.json) printJson({ deleted: ref });
          else process.stdout.write(`adapter ${ref} deleted\n`);
        });
      },
    ),
  );
  return adapters;
}
