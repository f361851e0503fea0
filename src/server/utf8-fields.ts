/**
 * UTF-8 validation of the string fields of a request, on its raw bytes.
 * ts-proto's reader (like protobufjs) decodes a string field leniently,
 * replacing invalid UTF-8 with U+FFFD, so a prompt with a stray byte would
 * run as some other prompt (issue 18). proto3 says a string field holds valid
 * UTF-8; so before a request is decoded, every string field of it, nested
 * messages and lists included, is checked against protoc's descriptors
 * (src/gen/descriptor-set.binpb), and the first bad one is named:
 *
 *   "`messages[1].content` is not valid UTF-8 (byte 7 of 12)"
 */
import { readFileSync } from 'node:fs';
import { createFileRegistry, fromBinary, ScalarType, type DescField, type DescMessage } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { invalidUtf8At } from '../common/utf8.js';
import { DESCRIPTOR_SET } from './reflection.js';

/** Throws a message naming the field when a string field of `bytes` is not valid UTF-8. */
export type Utf8Check = (bytes: Uint8Array) => void;

/** A string field that is not valid UTF-8; the message names it. */
export class InvalidUtf8Field extends Error {}

/** Deeper than any of our messages nest: beyond it nested messages are skipped (the decoder refuses them anyway). */
const MAX_DEPTH = 32;

/** Each message's fields by number, built on first use. */
const fieldMaps = new Map<DescMessage, Map<number, DescField>>();

function fieldsOf(desc: DescMessage): Map<number, DescField> {
  let fields = fieldMaps.get(desc);
  if (!fields) {
    fields = new Map(desc.fields.map((f) => [f.number, f]));
    fieldMaps.set(desc, fields);
  }
  return fields;
}

const isString = (f: DescField) => (f.fieldKind === 'scalar' || (f.fieldKind === 'list' && f.listKind === 'scalar')) && f.scalar === ScalarType.STRING;
const messageOf = (f: DescField): DescMessage | undefined => (f.fieldKind === 'message' ? f.message : f.fieldKind === 'list' && f.listKind === 'message' ? f.message : undefined);

function check(desc: DescMessage, reader: BinaryReader, end: number, path: string, depth: number): void {
  const fields = fieldsOf(desc);
  const seen = new Map<number, number>();
  while (reader.pos < end) {
    const [no, wireType] = reader.tag();
    const f = fields.get(no);
    const nested = f && wireType === WireType.LengthDelimited ? (isString(f) ? 'string' : messageOf(f)) : undefined;
    if (!f || nested === undefined || (nested !== 'string' && depth >= MAX_DEPTH)) {
      reader.skip(wireType, no);
      continue;
    }
    const index = seen.get(no) ?? 0;
    seen.set(no, index + 1);
    const name = `${path}${f.name}${f.fieldKind === 'list' ? `[${index}]` : ''}`;
    if (nested === 'string') {
      const bytes = reader.bytes();
      const at = invalidUtf8At(bytes);
      if (at > 0) throw new InvalidUtf8Field(`\`${name}\` is not valid UTF-8 (byte ${at} of ${bytes.length})`);
    } else {
      const length = reader.uint32();
      check(nested, reader, reader.pos + length, `${name}.`, depth + 1);
    }
  }
}

/**
 * The UTF-8 check of each ModelService method's request type, by gRPC path
 * ("/gentune.v1.ModelService/Generate").
 */
export function utf8Checks(serviceName: string): Map<string, Utf8Check> {
  const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(DESCRIPTOR_SET)));
  const service = registry.getService(serviceName);
  if (!service) throw new Error(`${DESCRIPTOR_SET} does not describe ${serviceName}: run npm run codegen`);
  const checks = new Map<string, Utf8Check>();
  for (const method of service.methods) {
    const input = method.input;
    checks.set(`/${serviceName}/${method.name}`, (bytes) => {
      const reader = new BinaryReader(bytes);
      try {
        check(input, reader, bytes.length, '', 0);
      } catch (err) {
        // Framing errors (a length past the end) are the decoder's to report, in its words.
        if (err instanceof InvalidUtf8Field) throw err;
      }
    });
  }
  return checks;
}
