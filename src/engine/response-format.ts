/**
 * Structured output's validation, for the transports (gRPC and HTTP decode
 * `response_format` and check it here, so a bad schema is INVALID_ARGUMENT /
 * HTTP 400 before it reaches the engine). The rules live with the decoder
 * that enforces them, in src/model/generation.
 */
export { checkResponseFormat } from '../model/generation/response-format.js';
export { checkJsonSchemaSubset, MAX_SCHEMA_DEPTH, SUPPORTED_SCHEMA_KEYWORDS } from '../model/generation/json-schema-subset.js';

/** Longest schema text accepted, in characters. */
export const MAX_SCHEMA_CHARS = 65_536;
