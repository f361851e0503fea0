/**
 * Start-up warnings for a server reachable from other machines without
 * protection: bound to a non-loopback address with no access control, or
 * sending bearer tokens in plaintext.
 */
import { isIP } from 'node:net';
import type { TransportSecurity } from './tls.js';

/** True for localhost, 127.0.0.0/8 and ::1 (also IPv4-mapped ::ffff:127.x.y.z and bracketed forms). */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  const v4 = h.startsWith('::ffff:') ? h.slice('::ffff:'.length) : h;
  if (isIP(v4) === 4) return v4.startsWith('127.');
  if (isIP(h) === 6) return /^(0{0,4}:){7}0{0,3}1$|^::1$/.test(h);
  return false;
}

/**
 * What is wrong with serving on `host` so protected; [] when nothing is.
 * Mutual TLS counts as access control (only holders of a client certificate get in).
 * @param server what listens, for the message ("the OpenAI HTTP API").
 */
export function exposureWarnings(host: string, auth: boolean, transport: TransportSecurity, server = 'the gRPC server'): string[] {
  if (isLoopbackHost(host)) return [];
  const warnings: string[] = [];
  if (!auth && transport !== 'mtls') {
    warnings.push(
      `${server} listens on ${host}, reachable from other machines, with NO access control: ` +
        'anyone who can reach it may fine-tune, upload and delete. Set --token-file or GENTUNE_ADMIN_TOKEN/GENTUNE_USER_TOKEN (and TLS).',
    );
  }
  if (auth && transport === 'plaintext') {
    warnings.push(`bearer tokens travel in plaintext on ${host}: set --tls-cert and --tls-key`);
  }
  return warnings;
}
