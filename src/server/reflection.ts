/**
 * gRPC server reflection (v1 and v1alpha, @grpc/reflection), so grpcurl,
 * Postman, grpcui and dynamic clients can discover and call ModelService and
 * Health without the .proto files.
 *
 * The descriptors are protoc's own (src/gen/descriptor-set.binpb, written by
 * scripts/codegen.sh): real file names (`gentune/v1/generate.proto`,
 * `google/protobuf/timestamp.proto`, `health/v1/health.proto`) and real
 * `dependency` lists. Loading proto/ through @grpc/proto-loader instead merges
 * each package into one made-up file (`gentune_v1.proto`) that does not declare
 * its imports, so no client could build a descriptor pool from it.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Server } from '@grpc/grpc-js';
import type { PackageDefinition } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';

/** Root of the .proto files (import paths are relative to it). */
export const PROTO_DIR = fileURLToPath(new URL('../../proto/', import.meta.url));

/** Entry .proto of the public API, relative to {@link PROTO_DIR}. */
export const SERVICE_PROTO = 'gentune/v1/service.proto';

/** protoc's FileDescriptorSet of every file the server speaks, imports included. */
export const DESCRIPTOR_SET = fileURLToPath(new URL('../gen/descriptor-set.binpb', import.meta.url));

/**
 * The serialized FileDescriptorProtos of a FileDescriptorSet, each exactly as
 * protoc wrote it (field 1, `repeated FileDescriptorProto file`), not decoded
 * and re-encoded.
 */
export function fileDescriptorProtos(set: Uint8Array): Buffer[] {
  const reader = new BinaryReader(set);
  const files: Buffer[] = [];
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) files.push(Buffer.from(reader.bytes()));
    else reader.skip(wireType);
  }
  return files;
}

/** Adds the reflection services, describing ModelService and grpc.health.v1.Health. */
export function addReflection(server: Server): void {
  // @grpc/reflection reads only `fileDescriptorProtos` of each entry of a
  // proto-loader PackageDefinition; one entry per file hands it protoc's
  // descriptors unchanged (the names and imports are what clients resolve).
  const files: PackageDefinition = {};
  fileDescriptorProtos(readFileSync(DESCRIPTOR_SET)).forEach((bytes, i) => {
    files[`file${i}`] = { format: 'Protocol Buffer 3 EnumDescriptorProto', type: {}, fileDescriptorProtos: [bytes] };
  });
  new ReflectionService(files).addToServer(server);
}
