/**
 * Keeps every `authorization` value a gRPC call sends. Node's HTTP/2 layer
 * folds a request's headers into an object that keeps only the first value of
 * `authorization` (one of its single-value headers), so grpc-js's metadata,
 * and auth.ts, saw the first of several and let it win (issue 18: a client
 * library that sends repeated metadata keys, such as grpcio, can send two).
 * Node hands every 'stream' listener the same headers object with the raw
 * list beside it; a listener that runs before grpc-js's puts all the values
 * back, so auth.ts refuses the call for having more than one.
 */
import type { Http2Server, IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { Server } from '@grpc/grpc-js';

const NAME = 'authorization';

/**
 * Installs the listener on every HTTP/2 server of a bound grpc-js `server`.
 * grpc-js keeps them in a private field (1.14: `http2Servers`); when it is
 * not there, the start fails rather than silently letting the first value win.
 */
export function keepRepeatedAuthorization(server: Server): void {
  const servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(servers instanceof Map) || servers.size === 0) {
    throw new Error('grpc-js no longer exposes its HTTP/2 servers as `http2Servers`: src/server/repeated-headers.ts needs updating');
  }
  for (const h2 of servers.keys() as IterableIterator<Http2Server>) {
    h2.prependListener('stream', (_stream: ServerHttp2Stream, headers: IncomingHttpHeaders, _flags: number, raw: string[]) => {
      const values: string[] = [];
      for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i] === NAME) values.push(raw[i + 1]!);
      // grpc-js's Metadata.fromHttp2Headers adds each value of an array.
      if (values.length > 1) (headers as Record<string, string | string[] | undefined>)[NAME] = values;
    });
  }
}
