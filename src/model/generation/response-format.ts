/**
 * What shape a generation's text must have (OpenAI's `response_format`):
 * free text, any JSON object, or JSON matching a schema. The two JSON kinds
 * are enforced while decoding (see grammar-constraint.ts), so the output
 * always parses, and a `json_schema` output always validates.
 */
import { InvalidArgument } from '../../common/errors.js';
import { checkJsonSchemaSubset } from './json-schema-subset.js';

/** The response format of a generation; `text` (the default) constrains nothing. */
export type ResponseFormat =
  | { type: 'text' }
  | { type: 'json_object' }
  | {
      type: 'json_schema';
      /** The parsed schema; only the subset of json-schema-subset.ts is accepted. */
      schema: Record<string, unknown>;
      /** The schema's name (OpenAI's `json_schema.name`); informational. */
      name?: string;
      /**
       * OpenAI's `strict`. The output is constrained to the schema either way
       * (and to no properties beyond those listed); kept for the record.
       */
      strict?: boolean;
    };

/**
 * Throws InvalidArgument when `format` is malformed or its schema leaves the
 * supported subset. `field` names the format in messages (`response_format`,
 * `sampling.response_format`); the schema is `${field}.json_schema.schema`.
 */
export function checkResponseFormat(format: ResponseFormat, field: string): ResponseFormat {
  if (format.type === 'json_schema') checkJsonSchemaSubset(format.schema, `${field}.json_schema.schema`);
  else if (format.type !== 'text' && format.type !== 'json_object') {
    throw new InvalidArgument(`\`${field}.type\` must be one of text, json_object, json_schema, got ${JSON.stringify((format as { type: unknown }).type)}`);
  }
  return format;
}

/** Whether the format constrains decoding at all. */
export function isConstrained(format: ResponseFormat | undefined): format is Exclude<ResponseFormat, { type: 'text' }> {
  return format !== undefined && format.type !== 'text';
}
