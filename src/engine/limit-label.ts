/**
 * How error messages name a server limit: its config key, its flag and its
 * value, so that a client reading the error knows what the operator would
 * have to raise (issue 9: "each enforced with RESOURCE_EXHAUSTED or
 * INVALID_ARGUMENT naming the limit"):
 *
 *   limitLabel('maxPromptTokens', 1024) -> "limits.max_prompt_tokens (--max-prompt-tokens) 1024"
 *
 * Its own file (no runtime imports) so that the serving worker can use it without
 * loading the configuration parser.
 */
import type { LimitsConfig } from './config.js';

/** `maxPromptTokens`, 1024 -> "limits.max_prompt_tokens (--max-prompt-tokens) 1024". */
export function limitLabel(key: keyof LimitsConfig, value: number): string {
  const snake = key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
  return `limits.${snake} (--${snake.replaceAll('_', '-')}) ${value}`;
}
