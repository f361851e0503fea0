/**
 * The bearer tokens a server accepts: the token file (`--token-file`, YAML or
 * JSON) plus GENTUNE_ADMIN_TOKEN / GENTUNE_USER_TOKEN. The file reads:
 *
 *   tokens:
 *     - name: ci            # shown in logs; the token never is
 *       role: admin         # admin | user
 *       token: 3f9c...      # 16..4096 printable ASCII characters, no spaces
 *     - name: chat-frontend
 *       role: user
 *       token: 8a1d...
 *
 * Errors name the file and the entry, never the token.
 */
import { readFile } from 'node:fs/promises';
import { load } from 'js-yaml';
import { z } from 'zod';
import { InvalidArgument } from '../common/errors.js';
import { TOKEN_PATTERN, type SecurityConfig } from '../engine/config.js';
import type { Role } from './auth-roles.js';

/** One accepted token and whom it stands for. */
export interface TokenEntry {
  /** Who holds it, for logs ("ci", "env:GENTUNE_ADMIN_TOKEN#1"). */
  name: string;
  role: Role;
  token: string;
}

const NAME = /^[A-Za-z0-9._:@#-]{1,64}$/;

const entrySchema = z.object({
  name: z.string().regex(NAME, 'must be 1..64 characters of A-Z a-z 0-9 . _ : @ # -'),
  role: z.enum(['user', 'admin'], 'must be "user" or "admin"'),
  token: z.string().regex(TOKEN_PATTERN, 'must be 16..4096 printable ASCII characters without spaces'),
});
const fileSchema = z.object({ tokens: z.array(z.unknown()) });

/** Parses the text of a token file; `source` names it in errors. */
export function parseTokenFile(text: string, source: string): TokenEntry[] {
  let doc: unknown;
  try {
    doc = load(text);
  } catch (err) {
    // js-yaml's message quotes the offending line, which may hold a token: keep only its position.
    const mark = (err as { mark?: { line?: number } }).mark;
    throw new InvalidArgument(`${source}: not valid YAML/JSON${mark?.line === undefined ? '' : ` (line ${mark.line + 1})`}`);
  }
  const file = fileSchema.safeParse(doc);
  if (!file.success) throw new InvalidArgument(`${source}: expected a \`tokens\` list (see README "Security")`);
  return file.data.tokens.map((item, i) => {
    const entry = entrySchema.safeParse(item);
    if (!entry.success) {
      const issue = entry.error.issues[0]!;
      const field = issue.path.length > 0 ? `.${issue.path.join('.')}` : '';
      throw new InvalidArgument(`${source}: \`tokens[${i}]${field}\` ${issue.path[0] === undefined ? 'must be an object' : issue.message}`);
    }
    return entry.data;
  });
}

/**
 * Every token the server accepts: the file's, then the environment's.
 * @throws InvalidArgument when the file cannot be read or parsed, or a token repeats.
 */
export async function loadTokens(security: SecurityConfig): Promise<TokenEntry[]> {
  const entries: TokenEntry[] = [];
  if (security.tokenFile !== '') {
    const source = `\`--token-file\` ${security.tokenFile}`;
    let text: string;
    try {
      text = await readFile(security.tokenFile, 'utf8');
    } catch (err) {
      throw new InvalidArgument(`${source}: cannot read it (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
    }
    entries.push(...parseTokenFile(text, source));
  }
  security.adminTokens.forEach((token, i) => entries.push({ name: `env:GENTUNE_ADMIN_TOKEN#${i + 1}`, role: 'admin', token }));
  security.userTokens.forEach((token, i) => entries.push({ name: `env:GENTUNE_USER_TOKEN#${i + 1}`, role: 'user', token }));
  const seen = new Map<string, string>();
  for (const e of entries) {
    const first = seen.get(e.token);
    if (first !== undefined) throw new InvalidArgument(`tokens \`${first}\` and \`${e.name}\` are the same token: give each client its own`);
    seen.set(e.token, e.name);
  }
  return entries;
}
