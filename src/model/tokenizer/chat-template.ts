import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { InvalidArgument } from '../../common/errors.js';
import { readOptionalFile } from './json-file.js';
import { readTokenizerConfig, type TokenizerConfig } from './tokenizer-config.js';
import type { Tokenizer } from './tokenizer.js';
import { type ChatMessage, renderChat, type TemplateSegment } from './chat-segments.js';

/** One turn of a conversation, as chat templates take it. */
export interface ChatTemplateMessage {
  /** `system`, `user` or `assistant` (templates may know more, such as `tool`). */
  readonly role: string;
  readonly content: string;
}

/** Options of {@link ChatTemplate.render}. */
export interface ChatRenderOptions {
  /** End with the opening of an assistant turn, for generation (`add_generation_prompt`). Default false. */
  addGenerationPrompt?: boolean;
  /** More template variables, e.g. Qwen3's `enable_thinking`. */
  variables?: Readonly<Record<string, unknown>>;
}

/** What a chat template needs from the tokenizer: its EOS ids and a spelling <-> id lookup (without one, no end-of-turn ids). */
export type ChatTemplateTokenizer = Pick<Tokenizer, 'eosId' | 'eosIds' | 'tokenToId' | 'idToToken'>;

/**
 * Spellings that end a turn in well-known templates: ChatML (`<|im_end|>`:
 * Qwen, SmolLM2), Llama 3 (`<|eot_id|>`, and `<|eom_id|>` after a tool call),
 * Gemma (`<end_of_turn>`), Phi-3 (`<|end|>`).
 */
export const END_OF_TURN_TOKENS: readonly string[] = ['<|im_end|>', '<|eot_id|>', '<|eom_id|>', '<end_of_turn>', '<|end|>'];

/**
 * The template of a folder without one: gentune's own chat format (the one
 * chat-segments.ts renders for fine-tuning), so that a
 * GPT-2 model fine-tuned here is prompted as it was trained:
 *
 * ```text
 * <|system|>\n{content}\n<|user|>\n{content}\n<|assistant|>\n{content}{eos_token}
 * ```
 *
 * Each turn is `<|role|>`, a newline and the content; a system or user turn
 * ends with a newline, an assistant turn with `eos_token` (GPT-2's
 * `<|endoftext|>`), where generation stops. `add_generation_prompt` appends
 * `<|assistant|>\n`. The role markers are ordinary text to a GPT-2 vocabulary.
 */
export const FALLBACK_CHAT_TEMPLATE =
  "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] }}" +
  "{% if message['role'] == 'assistant' %}{{ eos_token }}{% else %}{{ '\\n' }}{% endif %}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}";

/**
 * A model's Jinja chat template, rendered with @huggingface/jinja the way
 * transformers' `apply_chat_template` renders it: `messages`,
 * `add_generation_prompt`, `tools` and `documents` (none), the special tokens
 * by role (`bos_token`, `eos_token`, `unk_token`, `pad_token`,
 * `additional_special_tokens`, where tokenizer_config.json sets them),
 * `raise_exception` and `strftime_now`; blocks trimmed (`trim_blocks`,
 * `lstrip_blocks`). Encode the rendered text with `parseSpecialTokens: true`:
 * its `<|im_start|>` and BOS are control tokens.
 */
export class ChatTemplate {
  /**
   * Ids at which generation should stop: the end-of-turn tokens of
   * {@link END_OF_TURN_TOKENS} that the template writes and the vocabulary
   * has, then every EOS id.
   */
  readonly endOfTurnIds: readonly number[];
  /** True for {@link FALLBACK_CHAT_TEMPLATE} (the folder has no template of its own). */
  readonly isFallback: boolean;
  private readonly template: Template;
  /** Spellings that end an assistant turn in the rendering: the end-of-turn tokens the template writes, and EOS. */
  private readonly endOfTurnTexts: readonly string[];
  private readonly specials: Readonly<Record<string, unknown>>;

  /**
   * @param source the template text.
   * @param file where it came from, quoted in error messages.
   * @param specials the special-token variables (`bos_token`, ...) to render with.
   * @param tokenizer resolves the end-of-turn spellings to ids.
   * @throws InvalidArgument naming `file` when the template does not parse, or
   *   fails on a plain user/assistant conversation.
   */
  constructor(
    source: string,
    readonly file: string,
    specials: Readonly<Record<string, unknown>>,
    tokenizer: ChatTemplateTokenizer,
  ) {
    try {
      this.template = new Template(source);
    } catch (err) {
      throw new InvalidArgument(`${file}: \`chat_template\` does not parse: ${(err as Error).message}`, { cause: err });
    }
    this.specials = specials;
    this.isFallback = source === FALLBACK_CHAT_TEMPLATE;
    const markers = END_OF_TURN_TOKENS.filter((t) => source.includes(t)).map((t) => tokenizer.tokenToId?.(t));
    const ids = [...markers.filter((id) => id !== undefined), ...(tokenizer.eosIds ?? [tokenizer.eosId])];
    this.endOfTurnIds = [...new Set(ids)];
    const eosText = specials['eos_token'];
    this.endOfTurnTexts = [...END_OF_TURN_TOKENS.filter((t) => source.includes(t)), ...(typeof eosText === 'string' ? [eosText] : [])];
    // Unknown filters and methods only show when rendered: find them now, not on a request.
    try {
      this.renderUnchecked([{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello' }], { addGenerationPrompt: true });
    } catch (err) {
      throw new InvalidArgument(`${file}: \`chat_template\` fails on a user/assistant conversation: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * The conversation as the model's prompt text.
   *
   * @throws InvalidArgument naming the file when the template rejects the
   *   messages (its `raise_exception`, e.g. roles that do not alternate) or fails on them.
   */
  render(messages: readonly ChatTemplateMessage[], options: ChatRenderOptions = {}): string {
    try {
      return this.renderUnchecked(messages, options);
    } catch (err) {
      // raise_exception's message is the template's own ("Conversation roles must alternate ...").
      throw new InvalidArgument(`${this.file}: the chat template fails on these messages: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * The conversation as segments for training and scoring, from one
   * rendering of the whole conversation (the text the model is trained on):
   * each assistant message's content, through the end-of-turn token that
   * follows it (`<|im_end|>`, `<|eot_id|>`, or EOS), is completion
   * (`loss: true`, or false for a `weight: 0` message); the rest, generation prompts included, is prompt; all of
   * it `special` text. Contents are found in order in the rendering; a
   * template that rewrites an earlier turn's content (Qwen3 drops a
   * `<think>` block from past turns) is matched on what it keeps. gentune's
   * own template gives {@link renderChat}'s segments (EOS as the id, the
   * exact GPT-2 behaviour).
   *
   * @throws InvalidArgument naming the file when an assistant message's
   *   content cannot be found in the rendering.
   */
  segments(messages: readonly ChatMessage[], options: Pick<ChatRenderOptions, 'addGenerationPrompt'> = {}): TemplateSegment[] {
    if (this.isFallback) return renderChat(messages, options);
    const text = this.render(messages, options);
    const segments: TemplateSegment[] = [];
    const push = (piece: string, loss: boolean) => piece !== '' && segments.push({ kind: 'text', text: piece, loss, special: true });
    let at = 0;
    messages.forEach((m, i) => {
      if (m.role !== 'assistant') return;
      const think = m.content.lastIndexOf(THINK_END);
      const kept = think < 0 ? m.content : m.content.slice(think + THINK_END.length).replace(/^\n+/, '');
      let start = m.content === '' ? -1 : text.indexOf(m.content, at);
      let end = start + m.content.length;
      if (start < 0 && kept !== '') {
        start = text.indexOf(kept, at);
        end = start + kept.length;
      }
      if (start < 0) {
        // An empty content: the turn is the end-of-turn token alone.
        const marker = this.nextEndOfTurn(text, at);
        if (m.content.trim() !== '' || marker === undefined) {
          throw new InvalidArgument(`${this.file}: the chat template's rendering does not contain message ${i}'s content, so its assistant turn cannot be told apart for the loss`);
        }
        start = end = marker.index;
      }
      const marker = this.nextEndOfTurn(text, end);
      if (marker) end = marker.index + marker.text.length;
      push(text.slice(at, start), false);
      // weight 0 (OpenAI's format): the turn is context, not a target.
      push(text.slice(start, end), m.weight !== 0);
      at = end;
    });
    push(text.slice(at), false);
    return segments;
  }

  /** The first end-of-turn spelling (or EOS) in `text` at or after `from`. */
  private nextEndOfTurn(text: string, from: number): { index: number; text: string } | undefined {
    let best: { index: number; text: string } | undefined;
    for (const t of this.endOfTurnTexts) {
      const index = text.indexOf(t, from);
      if (index >= 0 && (best === undefined || index < best.index)) best = { index, text: t };
    }
    return best;
  }

  private renderUnchecked(messages: readonly ChatTemplateMessage[], options: ChatRenderOptions): string {
    // raise_exception and strftime_now are @huggingface/jinja's globals.
    // Caller's variables over the special tokens, as transformers merges its kwargs.
    return this.template.render({
      ...this.specials,
      ...options.variables,
      messages: messages.map((m) => ({ role: m.role, content: m.content })),
      add_generation_prompt: options.addGenerationPrompt ?? false,
      tools: null,
      documents: null,
    });
  }
}

/**
 * Loads the chat template of a model folder: `chat_template.jinja` when
 * present (as transformers now saves it), else tokenizer_config.json's
 * `chat_template` (a string, or the `default` of a named list), else
 * {@link FALLBACK_CHAT_TEMPLATE}.
 *
 * @throws InvalidArgument naming the file when it is malformed, the template
 *   does not parse, or a named list has no `default`.
 */
export async function loadChatTemplate(dir: string, tokenizer: ChatTemplateTokenizer): Promise<ChatTemplate> {
  const jinjaFile = join(dir, 'chat_template.jinja');
  const [jinja, config] = await Promise.all([readOptionalFile(jinjaFile), readTokenizerConfig(dir)]);
  const specials = specialTokenVariables(config, tokenizer);
  if (jinja !== undefined) return new ChatTemplate(jinja, jinjaFile, specials, tokenizer);
  const field = config?.chatTemplate;
  if (field === undefined) return new ChatTemplate(FALLBACK_CHAT_TEMPLATE, FALLBACK_SOURCE, specials, tokenizer);
  if (typeof field === 'string') return new ChatTemplate(field, config!.file, specials, tokenizer);
  const named = field.get('default');
  if (named === undefined) {
    throw new InvalidArgument(`${config!.file}: \`chat_template\` has no "default" template (it has ${JSON.stringify([...field.keys()])})`);
  }
  return new ChatTemplate(named, config!.file, specials, tokenizer);
}

const FALLBACK_SOURCE = 'the built-in fallback chat template';

/** Where a reasoning block ends: Qwen3's template keeps only what follows it in past turns. */
const THINK_END = '</think>';

/** {@link FALLBACK_CHAT_TEMPLATE} for `tokenizer`: for models built in memory, which have no folder to read one from. */
export function fallbackChatTemplate(tokenizer: ChatTemplateTokenizer): ChatTemplate {
  return new ChatTemplate(FALLBACK_CHAT_TEMPLATE, FALLBACK_SOURCE, specialTokenVariables(undefined, tokenizer), tokenizer);
}

/** transformers' `special_tokens_map`: the roles that are set; without a config, EOS is the tokenizer's. */
function specialTokenVariables(config: TokenizerConfig | undefined, tokenizer: ChatTemplateTokenizer): Record<string, unknown> {
  const vars: Record<string, unknown> = {};
  const eos = config?.eosToken ?? tokenizer.idToToken?.(tokenizer.eosId);
  if (config?.bosToken !== undefined) vars['bos_token'] = config.bosToken;
  if (eos !== undefined) vars['eos_token'] = eos;
  if (config?.unkToken !== undefined) vars['unk_token'] = config.unkToken;
  if (config?.padToken !== undefined) vars['pad_token'] = config.padToken;
  if (config !== undefined && config.additionalSpecialTokens.length > 0) vars['additional_special_tokens'] = config.additionalSpecialTokens;
  return vars;
}
