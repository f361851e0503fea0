/** `gentune generate`: streams a generation to stdout as tokens arrive. */
import { Command, Option } from 'commander';
import { FinishReason, GenerateResponse } from '../gen/gentune/v1/generate.js';
import { clientOptions, collectArg, intArg, numArg, printProto, withClient, type ClientOptions } from './output.js';

interface GenerateOptions extends ClientOptions {
  adapter?: string;
  maxNewTokens?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  repetitionPenalty?: number;
  seed?: number;
  stop?: string[];
  logprobs?: boolean;
  topLogprobs?: number;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const REASONS: Record<number, string> = {
  [FinishReason.FINISH_REASON_LENGTH]: 'length',
  [FinishReason.FINISH_REASON_EOS]: 'eos',
  [FinishReason.FINISH_REASON_STOP_SEQUENCE]: 'stop_sequence',
  [FinishReason.FINISH_REASON_CANCELLED]: 'cancelled',
};

export function generateCommand(): Command {
  const cmd = new Command('generate')
    .description('generate text from a prompt (the arguments, or stdin when none or "-")')
    .argument('[prompt...]', 'prompt text')
    .option('--adapter <name[@version]>', 'adapter to use (default: the base model)')
    .addOption(new Option('--max-new-tokens <n>', 'tokens to generate at most').argParser(intArg('--max-new-tokens', 1)))
    .addOption(new Option('--temperature <t>', 'sampling temperature, 0 = greedy').argParser(numArg('--temperature')))
    .addOption(new Option('--top-k <k>', 'top-k filter, 0 = off').argParser(intArg('--top-k', 0)))
    .addOption(new Option('--top-p <p>', 'nucleus filter, 1 = off').argParser(numArg('--top-p')))
    .addOption(new Option('--repetition-penalty <r>', 'repetition penalty, 1 = off').argParser(numArg('--repetition-penalty')))
    .addOption(new Option('--seed <n>', 'sampler seed').argParser(intArg('--seed', 0)))
    .option('--stop <text>', 'stop sequence (repeatable)', collectArg)
    .option('--logprobs', 'return log probabilities (with --json)')
    .addOption(new Option('--top-logprobs <n>', 'alternatives per position (with --logprobs)').argParser(intArg('--top-logprobs', 0, 20)));
  return clientOptions(cmd).action(async (words: string[], opts: GenerateOptions) => {
    const prompt = words.length === 0 || (words.length === 1 && words[0] === '-') ? await readStdin() : words.join(' ');
    await withClient(opts, async (client) => {
      const request = {
        prompt,
        adapter: opts.adapter ?? '',
        logprobs: opts.logprobs ?? false,
        topLogprobs: opts.topLogprobs,
        sampling: {
          maxNewTokens: opts.maxNewTokens,
          temperature: opts.temperature,
          topK: opts.topK,
          topP: opts.topP,
          repetitionPenalty: opts.repetitionPenalty,
          seed: opts.seed === undefined ? undefined : String(opts.seed),
          stop: opts.stop ?? [],
        },
      };
      // Ctrl-C cancels the call (the server stops generating) instead of killing us mid-write.
      const ac = new AbortController();
      const onSigint = () => ac.abort();
      process.once('SIGINT', onSigint);
      try {
        for await (const m of client.generate(request, { signal: ac.signal, timeoutMs: opts.timeout })) {
          if (opts.json) {
            printProto(GenerateResponse, 'gentune.v1.GenerateResponse', m);
            continue;
          }
          process.stdout.write(m.text);
          if (m.finishReason !== FinishReason.FINISH_REASON_UNSPECIFIED) {
            const u = m.usage;
            const tps = u && u.totalMs > 0 ? (u.generatedTokens / (u.totalMs / 1000)).toFixed(1) : '-';
            process.stdout.write('\n');
            process.stderr.write(
              `[${REASONS[m.finishReason] ?? m.finishReason}] ${u?.generatedTokens ?? 0} tokens, ` +
                `ttft ${u?.timeToFirstTokenMs.toFixed(0) ?? '-'} ms, ${tps} tokens/s${m.adapter ? `, adapter ${m.adapter}` : ''}\n`,
            );
          }
        }
      } finally {
        process.removeListener('SIGINT', onSigint);
      }
    });
  });
}
