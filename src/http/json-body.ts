/**
 * The JSON body parser of the OpenAI HTTP API: fastify's own (size limit,
 * prototype-poisoning checks, its errors), fed only valid UTF-8. Fastify
 * reads a JSON body as a string, which replaces invalid UTF-8 with U+FFFD, so
 * a prompt with a stray byte would run as some other prompt (issue 18);
 * this parser reads the bytes and refuses such a body with 400 saying where.
 */
import type { FastifyInstance } from 'fastify';
import { InvalidArgument } from '../common/errors.js';
import { invalidUtf8At } from '../common/utf8.js';

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** Replaces `app`'s application/json parser with the strict one. */
export function strictJsonBody(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body: Buffer, done) => {
    const at = invalidUtf8At(body);
    if (at > 0) {
      done(new InvalidArgument(`request body is not valid UTF-8 (byte ${at} of ${body.length})`), undefined);
      return;
    }
    parseJson(request, decoder.decode(body), done);
  });
}
