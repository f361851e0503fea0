/**
 * The `gentune` command line: `gentune serve` runs the server; every other
 * command is a client of a running one (--addr, default GENTUNE_ADDR or
 * 127.0.0.1:50051; --json for machine-readable output).
 *
 *   gentune serve --port 50051 --model models/gentune-mini
 *   gentune generate --adapter support "How do I reset my password?"
 *   gentune finetune --adapter support --file data/support.jsonl --max-steps 200
 *   gentune jobs watch <job-id>
 */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { addConfigOptions, resolveConfig } from '../engine/config.js';
import { adaptersCommand } from './adapter-command.js';
import { datasetsCommand } from './dataset-command.js';
import { evaluateCommand } from './evaluate-command.js';
import { fineTuneCommand, jobsCommand } from './fine-tune-command.js';
import { generateCommand } from './generate-command.js';
import { infoCommand } from './info-command.js';
import { exitQuietlyOnClosedStdout, reportError } from './output.js';

/** gentune's version, from package.json (the one file that says it). */
function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
  return pkg.version ?? '0.0.0';
}

function serveCommand(): Command {
  const cmd = new Command('serve').description('run the gRPC server (flags override GENTUNE_* environment variables)');
  return addConfigOptions(cmd).action(async (opts: Record<string, unknown>) => {
    const config = resolveConfig(opts);
    // Imported here so that client commands start fast and never load TensorFlow.js.
    const { serve } = await import('../server/main.js');
    const { createEngine } = await import('../engine/create-engine.js');
    await serve(config, createEngine);
  });
}

/** Builds the program (exported for tests). */
export function program(): Command {
  return new Command('gentune')
    .description('fine-tune, evaluate and serve GPT-2 and Llama-family models over gRPC')
    .version(packageVersion(), '-V, --version', 'print the gentune version')
    .showHelpAfterError()
    .addCommand(serveCommand())
    .addCommand(generateCommand())
    .addCommand(fineTuneCommand())
    .addCommand(jobsCommand())
    .addCommand(evaluateCommand())
    .addCommand(datasetsCommand())
    .addCommand(adaptersCommand())
    .addCommand(infoCommand());
}

exitQuietlyOnClosedStdout();
try {
  await program().parseAsync(process.argv);
} catch (err) {
  reportError(err);
  process.exitCode = process.exitCode || 1;
}
