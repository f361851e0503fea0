/**
 * gRPC server transport credentials from the PEM files named by --tls-cert,
 * --tls-key and --tls-client-ca (read and checked by tls-files.ts): plaintext
 * when none is set, TLS with cert and key, mutual TLS (client certificates
 * required and verified against the CA bundle) with --tls-client-ca too.
 */
import { ServerCredentials } from '@grpc/grpc-js';
import type { SecurityConfig } from '../engine/config.js';
import { readTlsFiles } from './tls-files.js';

export { transportSecurity, type TransportSecurity } from './tls-files.js';

/**
 * The credentials to bind with.
 * @throws InvalidArgument when a file is unreadable, not PEM, or the key does not match the certificate.
 */
export function serverCredentials(security: SecurityConfig): ServerCredentials {
  const files = readTlsFiles(security);
  if (files === null) return ServerCredentials.createInsecure();
  return ServerCredentials.createSsl(files.clientCa, [{ cert_chain: files.cert, private_key: files.key }], files.clientCa !== null);
}
