/**
 * The client commands' auth and TLS options: --token / --token-file (else
 * GENTUNE_TOKEN), --tls-ca (else GENTUNE_TLS_CA; system roots with --tls),
 * --tls-cert / --tls-key for mutual TLS (else GENTUNE_CLIENT_CERT /
 * GENTUNE_CLIENT_KEY). Tokens are never given commander defaults, so --help
 * cannot print one.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { GentuneClientOptions } from '../client/gentune-client.js';
import { defaultClientSecurity } from './client-env.js';

/** The parsed flags (commander camel-cases them). */
export interface ClientSecurityFlags {
  token?: string;
  tokenFile?: string;
  tls?: boolean;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
}

/** Adds the auth and TLS flags to a client command. */
export function securityOptions(cmd: Command): Command {
  return cmd
    .option('--token <token>', 'bearer token (prefer GENTUNE_TOKEN or --token-file: flags show in `ps`)')
    .option('--token-file <file>', 'read the bearer token from a file (first line)')
    .option('--tls', 'connect with TLS, verifying the server against the system roots (implied by --tls-ca)')
    .option('--tls-ca <file>', 'CA bundle (PEM) to verify the server with; enables TLS (env GENTUNE_TLS_CA)')
    .option('--tls-cert <file>', 'client certificate (PEM) for mutual TLS (env GENTUNE_CLIENT_CERT)')
    .option('--tls-key <file>', 'client private key (PEM) for mutual TLS (env GENTUNE_CLIENT_KEY)');
}

function read(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`\`${flag}\` ${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/**
 * Client options from the flags, then the environment.
 * @throws Error naming the flag when a file cannot be read or only one of cert/key is given.
 */
export function clientSecurity(flags: ClientSecurityFlags, env?: Record<string, string | undefined>): Pick<GentuneClientOptions, 'token' | 'tls'> {
  const defaults = defaultClientSecurity(env);
  let token = flags.token ?? '';
  if (token === '' && flags.tokenFile) token = read('--token-file', flags.tokenFile).toString('utf8').split('\n')[0]!.trim();
  if (token === '') token = defaults.token;
  const ca = flags.tlsCa ?? defaults.tlsCa;
  const cert = flags.tlsCert ?? defaults.tlsCert;
  const key = flags.tlsKey ?? defaults.tlsKey;
  if ((cert === '') !== (key === '')) throw new Error('`--tls-cert` and `--tls-key` go together: set both or neither');
  const useTls = flags.tls === true || ca !== '' || cert !== '';
  return {
    ...(token === '' ? {} : { token }),
    ...(useTls
      ? {
          tls: {
            ...(ca === '' ? {} : { ca: read('--tls-ca', ca) }),
            ...(cert === '' ? {} : { cert: read('--tls-cert', cert), key: read('--tls-key', key) }),
          },
        }
      : {}),
  };
}
