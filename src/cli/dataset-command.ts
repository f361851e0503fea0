/** `gentune datasets upload|list|delete`. */
import { createReadStream } from 'node:fs';
import { basename } from 'node:path';
import { Command, Option } from 'commander';
import { Dataset, DatasetFormat } from '../gen/gentune/v1/datasets.js';
import { clientOptions, fmtBytes, printJson, printProto, table, withClient, type ClientOptions } from './output.js';

const FORMATS: Record<string, DatasetFormat> = {
  auto: DatasetFormat.DATASET_FORMAT_UNSPECIFIED,
  'prompt-completion': DatasetFormat.DATASET_FORMAT_PROMPT_COMPLETION,
  chat: DatasetFormat.DATASET_FORMAT_CHAT,
  text: DatasetFormat.DATASET_FORMAT_TEXT,
};

function formatName(f: DatasetFormat): string {
  return DatasetFormat[f]?.replace('DATASET_FORMAT_', '').toLowerCase() ?? String(f);
}

export function datasetsCommand(): Command {
  const datasets = new Command('datasets').description('JSONL datasets stored on the server');
  datasets.addCommand(
    clientOptions(
      new Command('upload')
        .description('upload a JSONL file (validated line by line by the server)')
        .argument('<file.jsonl>')
        .option('--name <name>', 'dataset name (default: the file name)')
        .addOption(new Option('--format <format>', 'line schema').choices(Object.keys(FORMATS)).default('auto')),
    ).action(async (file: string, opts: ClientOptions & { name?: string; format: string }) => {
      await withClient(opts, async (client) => {
        const stream = createReadStream(file) as AsyncIterable<Buffer>;
        const ds = await client.uploadDataset({ name: opts.name ?? basename(file), format: FORMATS[opts.format] }, stream, {
          timeoutMs: opts.timeout,
        });
        if (opts.json) printProto(Dataset, 'gentune.v1.Dataset', ds);
        else process.stdout.write(`dataset ${ds.id}: ${ds.numExamples} ${formatName(ds.format)} examples, ${fmtBytes(ds.sizeBytes)}\n`);
      });
    }),
  );
  datasets.addCommand(
    clientOptions(new Command('list').description('list datasets, newest first')).action(async (opts: ClientOptions) => {
      await withClient(opts, async (client) => {
        const list = await client.listDatasets({ timeoutMs: opts.timeout });
        if (opts.json) list.forEach((d) => printProto(Dataset, 'gentune.v1.Dataset', d));
        else {
          const rows = list.map((d) => [d.id, d.name, formatName(d.format), d.numExamples, fmtBytes(d.sizeBytes), d.createdAt?.toISOString() ?? '-']);
          process.stdout.write(table(['ID', 'NAME', 'FORMAT', 'EXAMPLES', 'SIZE', 'CREATED'], rows));
        }
      });
    }),
  );
  datasets.addCommand(
    clientOptions(new Command('delete').description('delete a dataset').argument('<dataset-id>')).action(
      async (id: string, opts: ClientOptions) => {
        await withClient(opts, async (client) => {
          await client.deleteDataset(id, { timeoutMs: opts.timeout });
          if (opts.json) printJson({ deleted: id });
          else process.stdout.write(`dataset ${id} deleted\n`);
        });
      },
    ),
  );
  return datasets;
}
