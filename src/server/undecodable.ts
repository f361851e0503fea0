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
 * Found by the fuzzer (tests/integration/fuzz.test.ts).
 */
import type { ServiceDefinition } from '@grpc/grpc-js';
import { InvalidArgument } from '../common/errors.js';

const UNDECODABLE = Symbol('undecodable request');

/** What a tolerant deserializer returns for bytes that do not decode. */
interface Undecodable {
  readonly [UNDECODABLE]: string;
}

/** Longest decoder message quoted back, in characters. */
const REASON_LIMIT = 120;

/** `service` with every request deserializer wrapped so that it never throws. */
export function tolerantDecoding<S extends ServiceDefinition>(service: S): S {
  const methods: Record<string, S[keyof S]> = {};
  for (const [name, method] of Object.entries(service) as [string, S[keyof S]][]) {
    methods[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer): unknown => {
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
    throw new InvalidArgument(`the request is not a valid ${method} request message: ${(request as Undecodable)[UNDECODABLE]}`);
  }
  return request;
}

/** The messages of a client stream, each checked with {@link checkDecoded}. */
export async function* decodedStream<T>(method: string, messages: AsyncIterable<T>): AsyncGenerator<T> {
  for await (const message of messages) yield checkDecoded(method, message);
}
