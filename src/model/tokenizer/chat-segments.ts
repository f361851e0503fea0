/** Who speaks a chat message. */
export type ChatRole = 'system' | 'user' | 'assistant';

/** The roles a conversation may use, in the order error messages list them. */
export const CHAT_ROLES: readonly ChatRole[] = ['system', 'user', 'assistant'];

/** One turn of a conversation. */
export interface ChatMessage {
  role: ChatRole;
  content: string;
  /**
   * Assistant turns only, as OpenAI's fine-tuning chat format has it: 0 =
   * shown to the model as context but not trained on (no loss), 1 or absent
   * = trained on. Ignored at inference.
   */
  weight?: 0 | 1;
}

/**
 * A piece of a rendered conversation or example. `text` pieces are encoded
 * with the tokenizer one by one (never across a boundary), with the spellings
 * of special tokens parsed as those tokens when `special` (text a chat
 * template wrote: `<|im_start|>`); `eos` is the tokenizer's end-of-sequence
 * id itself, never the text `<|endoftext|>`. `loss` says whether the model is
 * trained to produce this piece.
 */
export type TemplateSegment =
  | { kind: 'text'; text: string; loss: boolean; special?: boolean }
  | { kind: 'eos'; loss: boolean };

/** The header that opens each turn, by role. */
export const CHAT_HEADERS = {
  system: '<|system|>\n',
  user: '<|user|>\n',
  assistant: '<|assistant|>\n',
} as const;

/** Options for {@link renderChat}. */
export interface RenderChatOptions {
  /**
   * Append the assistant header after the last message, so the model
   * continues with an assistant turn (inference). Default false.
   */
  addGenerationPrompt?: boolean;
}

/**
 * gentune's chat template. A conversation renders as
 *
 * ```text
 * <|system|>\n{system content}\n
 * <|user|>\n{user content}\n
 * <|assistant|>\n{assistant content}<EOS>
 * <|user|>\n{user content}\n
 * <|assistant|>\n{assistant content}<EOS>
 * ```
 *
 * (line breaks above only for reading; `\n` marks the real ones). Each
 * system or user turn is its header, its content and a newline; each
 * assistant turn is its header, its content and the EOS token, with no
 * newline: the model learns to end its turn with EOS, and generation stops
 * there. The markers are ordinary text to the tokenizer (GPT-2 has no such
 * special tokens), so any GPT-2-family vocabulary works.
 *
 * Segments: headers, system and user turns are prompt (`loss: false`); each
 * assistant content and its EOS are completion (`loss: true`), unless the
 * message has `weight: 0` (then they stay prompt). Adjacent prompt
 * text is merged into one segment, so the prompt for the next assistant turn
 * (ending in `<|assistant|>\n`) tokenizes identically at training and at
 * inference (`addGenerationPrompt: true`) time.
 *
 * Messages are not validated here; `parseSftExample` does that for datasets.
 */
export function renderChat(messages: readonly ChatMessage[], options: RenderChatOptions = {}): TemplateSegment[] {
  const segments: TemplateSegment[] = [];
  let prompt = '';
  const flushPrompt = (): void => {
    if (prompt !== '') segments.push({ kind: 'text', text: prompt, loss: false });
    prompt = '';
  };
  for (const m of messages) {
    prompt += CHAT_HEADERS[m.role];
    if (m.role === 'assistant') {
      flushPrompt();
      const loss = m.weight !== 0;
      if (m.content !== '') segments.push({ kind: 'text', text: m.content, loss });
      segments.push({ kind: 'eos', loss });
    } else {
      prompt += `${m.content}\n`;
    }
  }
  if (options.addGenerationPrompt) prompt += CHAT_HEADERS.assistant;
  flushPrompt();
  return segments;
}

/**
 * The segments as one string, for logs and tests; EOS is written as
 * `eosText` (default `<|endoftext|>`). Not for tokenizing: encode the
 * segments instead.
 */
export function segmentsToText(segments: readonly TemplateSegment[], eosText = '<|endoftext|>'): string {
  return segments.map((s) => (s.kind === 'eos' ? eosText : s.text)).join('');
}
