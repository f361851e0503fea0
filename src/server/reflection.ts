/**
 * gRPC server reflection (v1 and v1alpha, @grpc/reflection), so grpcurl,
 * Postman and friends can discover ModelService and Health without the .proto
 * files. The descriptors come from proto/ at runtime.
 */
import { fileURLToPath } from 'node:url';
import type { Server } from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { protoPath as healthProtoPath } from 'grpc-health-check';

/** Root of the .proto files (import paths are relative to it). */
export const PROTO_DIR = fileURLToPath(new URL('../../proto/', import.meta.url));

/** Entry .proto of the public API, relative to {@link PROTO_DIR}. */
export const SERVICE_PROTO = 'gentune/v1/service.proto';

/** Adds the reflection services, describing ModelService and grpc.health.v1.Health. */
export function addReflection(server: Server): void {
  const definition = protoLoader.loadSync([SERVICE_PROTO, healthProtoPath], {
    includeDirs: [PROTO_DIR],
    keepCase: true,
  });
  new ReflectionService(definition).addToServer(server);
}
