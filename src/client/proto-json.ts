/**
 * Proto3's canonical JSON mapping (https://protobuf.dev/programming-guides/json/)
 * of the messages the typed client returns, as every other language's protobuf
 * library prints them: lowerCamelCase names, 64-bit integers as strings, enums
 * by name, Timestamps in RFC 3339, bytes in base64, and fields without presence
 * printed even when they hold their default (`"sequence": 0`, `"text": ""`,
 * `"tokenIds": []`; Python's `including_default_value_fields` /
 * `always_print_fields_with_no_presence`, Go's `EmitUnpopulated` for them, the
 * spec's "emit fields with default values" option). Unset message fields, oneof
 * members and proto3 `optional` fields stay absent: absent is what they say.
 *
 *   printJson(toProto3Json(Adapter, 'gentune.v1.Adapter', adapter));
 *
 * Why not ts-proto's generated toJSON: it prints int64 as JSON numbers (we
 * generate with forceLong=number, and forceLong=string would turn every 64-bit
 * field of the server's code into a string) and can emit zeros only as a
 * codegen-wide switch. @bufbuild/protobuf (already a dependency) implements
 * the mapping and passes the conformance suite; it needs descriptors, which
 * scripts/codegen.sh writes next to the generated code
 * (src/gen/descriptor-set.binpb, the one server reflection serves). A message goes through the wire
 * format on the way (ts-proto encodes it, @bufbuild/protobuf decodes it), so
 * no field can be mapped by hand and go stale.
 */
import { readFileSync } from 'node:fs';
import { type DescField, type DescMessage, type FileRegistry, ScalarType, create, createFileRegistry, fromBinary, toJson } from '@bufbuild/protobuf';
import { type FileDescriptorProto, FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import type { JsonValue } from '@bufbuild/protobuf';

/** A ts-proto message type: what `Adapter`, `FineTuneEvent`, ... are. */
export interface ProtoMessageType<T> {
  encode(message: T): { finish(): Uint8Array };
}

const DESCRIPTORS = new URL('../gen/descriptor-set.binpb', import.meta.url);

let registry: FileRegistry | undefined;

/** The registry of gentune.v1 and its imports (Timestamp), and grpc.health.v1, built once. */
function gentuneRegistry(): FileRegistry {
  if (registry) return registry;
  const files = new Map<string, FileDescriptorProto>(fromBinary(FileDescriptorSetSchema, readFileSync(DESCRIPTORS)).file.map((f) => [f.name, f]));
  // createFileRegistry(set) wants dependencies first; protoc writes the files in command-line order.
  const ordered: FileDescriptorProto[] = [];
  const visit = (name: string) => {
    const file = files.get(name);
    if (!file || ordered.includes(file)) return;
    file.dependency.forEach(visit);
    ordered.push(file);
  };
  [...files.keys()].forEach(visit);
  registry = createFileRegistry(create(FileDescriptorSetSchema, { file: ordered }));
  return registry;
}

/**
 * Prints `message` of type `typeName` (full name, "gentune.v1.Adapter") in
 * proto3's canonical JSON, default values included.
 * @throws if `typeName` is no message of gentune.v1
 */
export function toProto3Json<T>(type: ProtoMessageType<T>, typeName: string, message: T): JsonValue {
  const schema = gentuneRegistry().getMessage(typeName);
  if (!schema) throw new Error(`proto-json: no message ${typeName} in gentune.v1`);
  const decoded = fromBinary(schema, type.encode(message).finish());
  return shortestFloats(schema, toJson(schema, decoded, { alwaysEmitImplicit: true }));
}

/**
 * The spec leaves number formatting open, and @bufbuild/protobuf prints a
 * `float` field's value as the double it widens to (0.05 -> 0.05000000074505806)
 * where C++, Java, Go and Python print the shortest decimal that reads back as
 * the same float (0.05). Prints the latter, so that every client agrees.
 */
function shortestFloats(schema: DescMessage, json: JsonValue): JsonValue {
  // Well-known types have JSON forms of their own (Timestamp is a string).
  if (schema.typeName.startsWith('google.protobuf.') || json === null || typeof json !== 'object' || Array.isArray(json)) return json;
  for (const field of schema.fields) {
    const value = json[field.jsonName];
    if (value !== undefined) json[field.jsonName] = mapField(field, value);
  }
  return json;
}

function mapField(field: DescField, value: JsonValue): JsonValue {
  const one = (v: JsonValue): JsonValue => {
    if (field.fieldKind === 'message' || (field.fieldKind === 'list' && field.listKind === 'message') || (field.fieldKind === 'map' && field.mapKind === 'message')) {
      return shortestFloats(field.message, v);
    }
    const scalar = field.fieldKind === 'scalar' || (field.fieldKind === 'list' && field.listKind === 'scalar') || (field.fieldKind === 'map' && field.mapKind === 'scalar') ? field.scalar : undefined;
    return scalar === ScalarType.FLOAT && typeof v === 'number' ? shortestFloat(v) : v;
  };
  if (field.fieldKind === 'list' && Array.isArray(value)) return value.map(one);
  if (field.fieldKind === 'map' && value !== null && typeof value === 'object' && !Array.isArray(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, one(v)]));
  }
  return one(value);
}

/** The number with the fewest significant digits that rounds to the same 32-bit float as `v`. */
export function shortestFloat(v: number): number {
  for (let digits = 1; digits < 17; digits++) {
    const candidate = Number(v.toPrecision(digits));
    if (Math.fround(candidate) === v) return candidate;
  }
  return v;
}
