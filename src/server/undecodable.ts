/**
 * Requests that are not valid protobuf. grpc-js answers a message its
 * deserializer throws on with INTERNAL ("Error deserializing request"),
 * which tells the client that the server broke; the fault is the client's,
 * and DESIGN.md ("Errors") keeps INTERNAL for our own bugs. So the
 * ModelService definition is served with deserializers that do not throw:
 * an undecodable message becomes a marker, and the rpc wrappers (rpc.ts)
 * answer it with INVALID_ARGUMENT:
 *
 *   "the request is not a valid Generate request message: premature EOF"
 *
 * Found by the fuzzer (tests/integration/fuzz.test.ts). A string field
 * that is not valid UTF-8 is answered the same way, naming the field
 * (utf8-fields.ts): "`prompt` is not valid UTF-8 (byte 2 of 3)".
 */
import type { ServiceDefinition } from '@grpc/grpc-js';
import { InvalidArgument } from '../common/errors.js';
import { utf8Checks } from './utf8-fields.js';

const UNDECODABLE = Symbol('undecodable request');

/** What a tolerant deserializer returns for bytes that do not decode. */
interface Undecodable {
  readonly [UNDECODABLE]: string;
  /** The reason is a whole message naming a field (invalid UTF-8), not the decoder's. */
  readonly field?: true;
}

/** Longest decoder message quoted back, in characters. */
const REASON_LIMIT = 120;

/**
 * `service` with every request deserializer wrapped so that it never throws,
 * and checks the request's string fields for valid UTF-8 first (utf8-fields.ts;
 * `serviceName` is the full name its descriptors use, "gentune.v1.ModelService").
 */
export function tolerantDecoding<S extends ServiceDefinition>(service: S, serviceName: string): S {
  const utf8 = utf8Checks(serviceName);
  const methods: Record<string, S[keyof S]> = {};
  for (const [name, method] of Object.entries(service) as [string, S[keyof S]][]) {
    const checkUtf8 = utf8.get(method.path);
    methods[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer): unknown => {
        try {
          checkUtf8?.(bytes);
        } catch (err) {
          return { [UNDECODABLE]: (err as Error).message, field: true } satisfies Undecodable;
        }
        try {
          return method.requestDeserialize(bytes);
        } catch (err) {
          const reason = err instanceof Error ? err.message : String(err);
          return { [UNDECODABLE]: reason.slice(0, REASON_LIMIT) } satisfies Undecodable;
        }
      },
    };
  }
  return methods as unknown as S;
}

/**
 * Returns `request`, or throws InvalidArgument when a tolerant deserializer
 * could not decode it. `method` is the RPC's name ("Generate").
 */
export function checkDecoded<T>(method: string, request: T): T {
  if (typeof request === 'object' && request !== null && UNDECODABLE in request) {
    const bad = request as Undecodable;
    throw new InvalidArgument(bad.field ? bad[UNDECODABLE] : `the request is not a valid ${method} request message: ${bad[UNDECODABLE]}`);
  }
  return request;
}

/** The messages of a client stream, each checked with {@link checkDecoded}. */
export async function* decodedStream<T>(method: string, messages: AsyncIterable<T>): AsyncGenerator<T> {
  for await (const message of messages) yield checkDecoded(method, message);
}
