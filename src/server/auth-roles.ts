/**
 * Which role each ModelService RPC needs: the ONE table. `user` may generate,
 * evaluate and read; `admin` may also change state (fine-tune, uploads,
 * adapters, jobs). Admin implies user. grpc.health.v1 and reflection are not
 * ModelService methods and stay open.
 *
 * The table's type names every RPC of the generated service, so a new RPC
 * does not compile until it is classified here (and tests/integration/auth.test.ts
 * checks the table against the service definition at run time).
 */
import type { ModelServiceService } from '../gen/gentune/v1/service.js';

/** A caller's role; `admin` includes everything `user` may do. */
export type Role = 'user' | 'admin';

/** RPC names as the .proto spells them ("Generate", "FineTune", ...). */
export type ModelServiceMethod = Capitalize<keyof ModelServiceService>;

/** The role each ModelService RPC needs. */
export const METHOD_ROLES: Readonly<Record<ModelServiceMethod, Role>> = {
  Generate: 'user',
  Evaluate: 'user',
  EvaluateStream: 'user',
  WatchFineTune: 'user',
  GetFineTuneJob: 'user',
  ListFineTuneJobs: 'user',
  ListDatasets: 'user',
  ListAdapters: 'user',
  GetServerInfo: 'user',
  FineTune: 'admin',
  CancelFineTune: 'admin',
  UploadDataset: 'admin',
  DeleteDataset: 'admin',
  LoadAdapter: 'admin',
  UnloadAdapter: 'admin',
  DeleteAdapter: 'admin',
  SetAdapterAlias: 'admin',
};

/** The role `method` needs; a name missing from the table needs `admin` (fail closed). */
export function requiredRole(method: string): Role {
  return Object.hasOwn(METHOD_ROLES, method) ? METHOD_ROLES[method as ModelServiceMethod] : 'admin';
}

/** True when `role` may call a method that needs `needed`. */
export function roleAllows(role: Role, needed: Role): boolean {
  return role === 'admin' || needed === 'user';
}
