import { InvalidArgument } from '../../common/errors.js';

import { CHAT_ROLES, type ChatMessage, type ChatRole } from '../../model/tokenizer/chat-segments.js';

// A chat example's turns are the model's chat messages.
export { CHAT_ROLES, type ChatMessage, type ChatRole } from '../../model/tokenizer/chat-segments.js';

/**
 * One supervised fine-tuning example, as a dataset line holds it:
 * - `prompt_completion`: `{"prompt", "completion"}`; loss on the completion.
 * - `chat`: `{"messages": [{"role", "content"}]}`; loss on assistant turns.
 *   This is OpenAI's fine-tuning chat format: an assistant message may carry
 *   `"weight": 0` (context only, no loss) or `1`. What that format allows and
 *   gentune cannot train is refused by name (see {@link UNSUPPORTED_MESSAGE_KEYS}).
 * - `text`: `{"text"}`; loss on every token (continued pretraining).
 */
export type SftExample =
  | { kind: 'prompt_completion'; prompt: string; completion: string }
  | { kind: 'chat'; messages: ChatMessage[] }
  | { kind: 'text'; text: string };

/**
 * Keys of OpenAI's chat format that gentune's chat template cannot express:
 * refused by name rather than dropped, since dropping them changes what the
 * model learns. Other unknown keys are ignored, as on the example itself.
 */
export const UNSUPPORTED_MESSAGE_KEYS = ['tool_calls', 'function_call', 'tool_call_id', 'name', 'refusal', 'audio'] as const;

/** Example-level keys of OpenAI's format for tool use, refused for the same reason. */
export const UNSUPPORTED_EXAMPLE_KEYS = ['tools', 'functions', 'parallel_tool_calls'] as const;

/** An example with the 1-based dataset line it came from, for error messages. */
export interface NumberedExample {
  line: number;
  example: SftExample;
}

/**
 * Validates one decoded JSON value as an example. `line` (1-based) prefixes
 * every error message: "line 3: missing `completion`". Unknown extra fields
 * (an `id`, metadata) are ignored; fields of two shapes in one object are not.
 */
export function parseSftExample(value: unknown, line: number): SftExample {
  const fail = (message: string): never => {
    throw new InvalidArgument(`line ${line}: ${message}`);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return fail(`expected a JSON object, got ${describe(value)}`);
  }
  const o = value as Record<string, unknown>;
  const shapes: string[] = [];
  if ('prompt' in o) shapes.push('prompt');
  else if ('completion' in o) shapes.push('completion');
  if ('messages' in o) shapes.push('messages');
  if ('text' in o) shapes.push('text');
  if (shapes.length > 1) {
    return fail(
      `example mixes fields of different shapes (${shapes.map((s) => `\`${s}\``).join(', ')}); ` +
        `use exactly one of {"prompt", "completion"}, {"messages"} or {"text"}`,
    );
  }
  if (shapes.length === 0) {
    const keys = Object.keys(o);
    const got =
      keys.length === 0
        ? 'an empty object'
        : `fields ${keys.slice(0, 5).map((k) => `\`${truncate(k)}\``).join(', ')}${keys.length > 5 ? ', ...' : ''}`;
    return fail(
      `example matches no shape: expected {"prompt", "completion"}, {"messages"} or {"text"}, got ${got}`,
    );
  }

  if ('messages' in o) {
    for (const key of UNSUPPORTED_EXAMPLE_KEYS) {
      if (key in o) fail(`\`${key}\` is not supported: gentune fine-tunes on system, user and assistant text turns, not tool calls`);
    }
    return { kind: 'chat', messages: parseMessages(o.messages, fail) };
  }
  if ('text' in o) return { kind: 'text', text: nonEmptyString(o, 'text', 'text', fail) };
  if (!('prompt' in o)) return fail('missing `prompt`');
  if (!('completion' in o)) return fail('missing `completion`');
  // An empty prompt is allowed (unconditional generation); an empty completion
  // would leave nothing to learn but the end of sequence.
  if (typeof o.prompt !== 'string') return fail(`\`prompt\` must be a string, got ${describe(o.prompt)}`);
  return { kind: 'prompt_completion', prompt: o.prompt, completion: nonEmptyString(o, 'completion', 'completion', fail) };
}

function parseMessages(value: unknown, fail: (message: string) => never): ChatMessage[] {
  if (!Array.isArray(value) || value.length === 0) {
    return fail(`\`messages\` must be a non-empty array, got ${describe(value)}`);
  }
  const messages = value.map((m: unknown, i): ChatMessage => {
    const field = `messages[${i}]`;
    if (typeof m !== 'object' || m === null || Array.isArray(m)) {
      return fail(`\`${field}\` must be an object with \`role\` and \`content\`, got ${describe(m)}`);
    }
    const o = m as Record<string, unknown>;
    if (!('role' in o)) return fail(`missing \`${field}.role\``);
    const role = o.role;
    if (role === 'tool' || role === 'function') {
      return fail(`\`${field}.role\` ${describe(role)} is not supported: gentune fine-tunes on system, user and assistant text turns, not tool calls`);
    }
    if (typeof role !== 'string' || !(CHAT_ROLES as readonly string[]).includes(role)) {
      return fail(`\`${field}.role\` must be one of ${CHAT_ROLES.join(', ')}, got ${describe(role)}`);
    }
    for (const key of UNSUPPORTED_MESSAGE_KEYS) {
      if (key in o) fail(`\`${field}.${key}\` is not supported: gentune's chat template has text turns only (role and content)`);
    }
    // A system prompt sets up the whole conversation; mid-conversation ones
    // have no place in the chat template.
    if (role === 'system' && i > 0) {
      return fail(`\`${field}.role\` "system" is only allowed in the first message`);
    }
    if (!('content' in o)) return fail(`missing \`${field}.content\``);
    // Assistant turns are what the model learns to produce: empty ones teach nothing.
    const content =
      role === 'assistant'
        ? nonEmptyString(o, 'content', `${field}.content`, fail)
        : o.content;
    if (typeof content !== 'string') {
      const parts = Array.isArray(content) ? ' (content parts, such as images, are not supported)' : '';
      return fail(`\`${field}.content\` must be a string${parts}, got ${describe(content)}`);
    }
    if (!('weight' in o)) return { role: role as ChatRole, content };
    if (role !== 'assistant') return fail(`\`${field}.weight\` is only allowed on assistant messages, got it on role ${describe(role)}`);
    if (o.weight !== 0 && o.weight !== 1) return fail(`\`${field}.weight\` must be 0 or 1, got ${describe(o.weight)}`);
    return { role: 'assistant', content, weight: o.weight };
  });
  if (messages.every((m) => m.role !== 'assistant' || m.weight === 0)) {
    return fail('every assistant message has `weight` 0: nothing to train on');
  }
  const last = messages[messages.length - 1];
  if (last.role !== 'assistant') {
    return fail(`the last message must be from the assistant, got ${describe(last.role)}`);
  }
  return messages;
}

function nonEmptyString(
  o: Record<string, unknown>,
  key: string,
  field: string,
  fail: (message: string) => never,
): string {
  const v = o[key];
  if (typeof v !== 'string' || v.length === 0) {
    return fail(`\`${field}\` must be a non-empty string, got ${describe(v)}`);
  }
  return v;
}

/** A short description of a JSON value for error messages (never the whole value). */
function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return value.length === 0 ? 'an empty array' : 'an array';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return JSON.stringify(truncate(value));
  return String(value);
}

function truncate(s: string, max = 40): string {
  return s.length <= max ? s : `${s.slice(0, max)}...`;
}
