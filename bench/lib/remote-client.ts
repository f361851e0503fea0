/**
 * A gRPC client in a process of its own, as a real client is: reads one
 * Generate request per stdin line (JSON: address-less GenerateRequest fields),
 * runs it, and writes one JSON line per request: tokens, and the decode rate
 * (tokens after the first over the time they took), timed here, where the
 * tokens arrive. Started by bench/serve.ts with the server's address.
 * Usage: npx tsx bench/lib/remote-client.ts 127.0.0.1:PORT
 */
import { createInterface } from 'node:readline';
import { GentuneClient } from '../../src/client/gentune-client.js';

const client = new GentuneClient(process.argv[2]!, { defaultTimeoutMs: 600_000 });
for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  let tokens = 0;
  let firstMs = 0;
  try {
    for await (const m of client.generate(JSON.parse(line))) {
      if (tokens === 0 && m.tokenIds.length > 0) firstMs = performance.now();
      tokens += m.tokenIds.length;
    }
    const rate = tokens > 1 ? (tokens - 1) / ((performance.now() - firstMs) / 1000) : 0;
    process.stdout.write(`${JSON.stringify({ tokens, rate })}\n`);
  } catch (err) {
    process.stdout.write(`${JSON.stringify({ error: String(err) })}\n`);
  }
}
client.close();
