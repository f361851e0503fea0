/**
 * What the client CLI reads from the environment, in one place (its flags
 * win). The server's configuration is read in src/engine/config.ts; the two
 * use distinct names (GENTUNE_TLS_CA, GENTUNE_CLIENT_CERT vs the server's
 * GENTUNE_TLS_CERT) so that one shell may hold both.
 */

/** The client CLI's security settings from the environment: '' = not set. */
export interface ClientSecurityDefaults {
  /** GENTUNE_TOKEN: bearer token. */
  token: string;
  /** GENTUNE_TLS_CA: CA bundle (PEM file) to verify the server with; set = TLS. */
  tlsCa: string;
  /** GENTUNE_CLIENT_CERT / GENTUNE_CLIENT_KEY: client certificate and key (PEM files) for mutual TLS. */
  tlsCert: string;
  tlsKey: string;
}

/** The client CLI's security defaults from the environment. */
export function defaultClientSecurity(env: Record<string, string | undefined> = process.env): ClientSecurityDefaults {
  return {
    token: env.GENTUNE_TOKEN?.trim() ?? '',
    tlsCa: env.GENTUNE_TLS_CA ?? '',
    tlsCert: env.GENTUNE_CLIENT_CERT ?? '',
    tlsKey: env.GENTUNE_CLIENT_KEY ?? '',
  };
}

/** Default server address of the client CLI: GENTUNE_ADDR, else 127.0.0.1:50051. */
export function defaultClientAddress(env: Record<string, string | undefined> = process.env): string {
  return env.GENTUNE_ADDR || '127.0.0.1:50051';
}
