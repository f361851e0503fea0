/**
 * Bearer-token access control of ModelService calls. A call sends
 * `authorization: Bearer <token>` metadata; the token must be one the server
 * holds (token-file.ts), and its role must allow the method (auth-roles.ts).
 * Missing or unknown token -> Unauthenticated; known token, role too low ->
 * PermissionDenied (status.ts maps both). rpc.ts asks before every call;
 * grpc.health.v1 and reflection never reach it.
 *
 * Tokens are compared as SHA-256 digests with crypto.timingSafeEqual, against
 * every held token without stopping at a match, so neither the length of a
 * token nor which one matched shows in the timing. Tokens are never logged.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Metadata } from '@grpc/grpc-js';
import { PermissionDenied, Unauthenticated } from '../common/errors.js';
import type { SecurityConfig } from '../engine/config.js';
import { requiredRole, roleAllows, type Role } from './auth-roles.js';
import { loadTokens, type TokenEntry } from './token-file.js';

/** Who made a call. */
export interface Principal {
  /** The token's name (token file `name`), for logs. */
  name: string;
  role: Role;
}

interface Credential {
  digest: Buffer;
  principal: Principal;
}

const BEARER_SCHEME = /^Bearer$/i;
const TOKEN_CHARS = /^[\x21-\x7e]+$/;

const sha256 = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/** Checks the bearer token of each call against the held tokens. */
export class Authorizer {
  private readonly credentials: Credential[];

  /** @param tokens the accepted tokens; none = auth off (every call allowed). */
  constructor(tokens: readonly TokenEntry[]) {
    this.credentials = tokens.map((t) => ({ digest: sha256(t.token), principal: { name: t.name, role: t.role } }));
  }

  /** Reads the token file and the environment's tokens (see token-file.ts). */
  static async fromConfig(security: SecurityConfig): Promise<Authorizer> {
    return new Authorizer(await loadTokens(security));
  }

  /** True when any token is configured; when false, {@link authorize} allows everything. */
  get enabled(): boolean {
    return this.credentials.length > 0;
  }

  /** How many tokens hold each role (for the start-up log: counts, never tokens). */
  counts(): Record<Role, number> {
    const counts: Record<Role, number> = { user: 0, admin: 0 };
    for (const c of this.credentials) counts[c.principal.role]++;
    return counts;
  }

  /**
   * Authorizes a call of ModelService `method` ("Generate") from its metadata.
   * @returns the caller, or undefined when auth is off.
   * @throws Unauthenticated (no or unknown token), PermissionDenied (role too low).
   */
  authorize(method: string, metadata: Metadata): Principal | undefined {
    return this.authorizeBearer(method, metadata.get('authorization'), 'metadata');
  }

  /**
   * Authorizes a call from its `authorization` values: gRPC metadata entries
   * or an HTTP header (src/http, which names `method` after the ModelService
   * RPC its route does: "Generate" for chat completions).
   * @param where how the caller sends it, for messages ("metadata", "header").
   */
  authorizeBearer(method: string, values: readonly unknown[], where: 'metadata' | 'header'): Principal | undefined {
    if (!this.enabled) return undefined;
    const principal = this.identify(values, where);
    const needed = requiredRole(method);
    if (!roleAllows(principal.role, needed)) {
      throw new PermissionDenied(`\`${method}\` needs the ${needed} role; the token \`${principal.name}\` has ${principal.role}`);
    }
    return principal;
  }

  private identify(values: readonly unknown[], where: 'metadata' | 'header'): Principal {
    const token = bearerToken(values, where);
    const digest = sha256(token);
    let found: Principal | undefined;
    for (const c of this.credentials) {
      if (timingSafeEqual(c.digest, digest) && found === undefined) found = c.principal;
    }
    if (found === undefined) throw new Unauthenticated('invalid bearer token');
    return found;
  }
}

/**
 * The token of the one `authorization` value, or Unauthenticated saying what
 * is wrong with the values. Never quotes a token.
 */
function bearerToken(values: readonly unknown[], where: 'metadata' | 'header'): string {
  const what = where === 'metadata' ? '`authorization` metadata' : '`authorization` header';
  if (values.length === 0) {
    // gRPC: HTTP/2 (nghttp2, RFC 9113 8.2.1) drops a field value with leading or
    // trailing whitespace before grpc-js sees it, so such a token arrives as nothing.
    const dropped = where === 'metadata' ? '; a value with leading or trailing whitespace is dropped by HTTP/2 on the way' : '';
    throw new Unauthenticated(`missing bearer token: no ${what} arrived (send \`authorization: Bearer <token>\`${dropped})`);
  }
  if (values.length > 1) {
    // Node keeps only the first `authorization` header in `headers`; src/http passes every one, so that none is ignored.
    throw new Unauthenticated(`${values.length} ${where === 'metadata' ? '`authorization` metadata values' : '`authorization` headers'}: send exactly one \`Bearer <token>\``);
  }
  const value = values[0];
  if (typeof value !== 'string') throw new Unauthenticated(`${what} must be text (\`Bearer <token>\`), got binary`);
  const [scheme = '', ...rest] = value.trim().split(/[ \t]+/);
  if (!BEARER_SCHEME.test(scheme)) {
    throw new Unauthenticated(`${what} must use the Bearer scheme (\`Bearer <token>\`), got \`${scheme.slice(0, 16).replace(/[^\x21-\x7e]/g, '?')}\``);
  }
  if (rest.length === 0) throw new Unauthenticated(`${what} has no token after \`Bearer\``);
  if (rest.length > 1) throw new Unauthenticated(`${what}: the bearer token has a space in it (a token is printable ASCII without spaces)`);
  if (!TOKEN_CHARS.test(rest[0]!)) throw new Unauthenticated(`${what}: the bearer token has a character outside printable ASCII`);
  return rest[0]!;
}
