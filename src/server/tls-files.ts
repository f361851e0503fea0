/**
 * The PEM files named by --tls-cert, --tls-key and --tls-client-ca, read and
 * checked once for both front doors: the gRPC server (tls.ts) and the OpenAI
 * HTTP API (src/http). A bad file fails the start with a message naming the
 * flag, not the library's.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { InvalidArgument } from '../common/errors.js';
import type { SecurityConfig } from '../engine/config.js';

/** Transport security of a port. */
export type TransportSecurity = 'plaintext' | 'tls' | 'mtls';

/** Which transport security `security` asks for. */
export function transportSecurity(security: SecurityConfig): TransportSecurity {
  if (security.tlsCert === '') return 'plaintext';
  return security.tlsClientCa === '' ? 'tls' : 'mtls';
}

/** The checked PEM contents; `clientCa` set = mutual TLS. */
export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
  clientCa: Buffer | null;
}

function readPem(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new InvalidArgument(`\`${flag}\` ${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
  }
}

function parse<T>(flag: string, path: string, what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw new InvalidArgument(`\`${flag}\` ${path}: not a PEM ${what}`, { cause: err });
  }
}

/**
 * Reads and checks the files; null for plaintext.
 * @throws InvalidArgument when a file is unreadable, not PEM, or the key does not match the certificate.
 */
export function readTlsFiles(security: SecurityConfig): TlsFiles | null {
  const mode = transportSecurity(security);
  if (mode === 'plaintext') return null;
  const cert = readPem('--tls-cert', security.tlsCert);
  const key = readPem('--tls-key', security.tlsKey);
  const leaf = parse('--tls-cert', security.tlsCert, 'certificate', () => new X509Certificate(cert));
  const privateKey = parse('--tls-key', security.tlsKey, 'private key', () => createPrivateKey(key));
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new InvalidArgument(`\`--tls-key\` ${security.tlsKey} does not match the certificate in \`--tls-cert\` ${security.tlsCert}`);
  }
  let clientCa: Buffer | null = null;
  if (mode === 'mtls') {
    clientCa = readPem('--tls-client-ca', security.tlsClientCa);
    parse('--tls-client-ca', security.tlsClientCa, 'certificate', () => new X509Certificate(clientCa!));
  }
  return { cert, key, clientCa };
}
