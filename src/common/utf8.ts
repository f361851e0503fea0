/**
 * Strict UTF-8 checks of raw bytes. Decoders on the request path (protobuf's
 * string fields, fastify's JSON body) replace invalid sequences with U+FFFD,
 * so text a client did not send would be served as if it had (issue 18);
 * these find the bad byte first, so the error can say where.
 */
import { isUtf8 } from 'node:buffer';

/**
 * The 1-based position of the first byte of `bytes` that is not part of a
 * well-formed UTF-8 sequence (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF), or 0 when all of it is valid.
 */
export function invalidUtf8At(bytes: Uint8Array): number {
  // The native check is fast; the scan below runs only to locate a failure.
  if (isUtf8(bytes)) return 0;
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    // Sequence length and the allowed range of the second byte (Unicode Table 3-7).
    let n: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) n = 2;
    else if (b >= 0xe0 && b <= 0xef) {
      n = 3;
      if (b === 0xe0) lo = 0xa0;
      if (b === 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      n = 4;
      if (b === 0xf0) lo = 0x90;
      if (b === 0xf4) hi = 0x8f;
    } else return i + 1;
    for (let k = 1; k < n; k++) {
      const c = bytes[i + k];
      if (c === undefined || c < (k === 1 ? lo : 0x80) || c > (k === 1 ? hi : 0xbf)) return i + 1;
    }
    i += n;
  }
  return 0;
}
