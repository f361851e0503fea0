/**
 * Renders a kustomization to its objects: with `kubectl kustomize` where
 * kubectl is installed, else offline with the subset of kustomize that
 * deploy/k8s uses (resources, JSON 6902 `patches` with a kind/name target,
 * `images`). Anything else in a kustomization fails loudly, so the offline
 * renderer cannot silently drift from what kubectl would produce.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { load, loadAll } from 'js-yaml';

export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string> }; [key: string]: unknown };

interface Kustomization {
  apiVersion?: string;
  kind?: string;
  resources?: string[];
  patches?: { path: string; target: { kind: string; name: string } }[];
  images?: { name: string; newName?: string; newTag?: string }[];
}

type Op = { op: 'add' | 'replace' | 'remove'; path: string; value?: unknown };

const SUPPORTED = new Set(['apiVersion', 'kind', 'resources', 'patches', 'images']);

/** True when `kubectl kustomize` can run here. */
export function hasKubectl(): boolean {
  return spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' }).status === 0;
}

/** Renders with kubectl. */
export function renderWithKubectl(dir: string): K8sObject[] {
  const r = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`kubectl kustomize ${dir} failed: ${r.stderr}`);
  return loadAll(r.stdout).filter(Boolean) as K8sObject[];
}

/** The kustomization file of `dir`. */
export function readKustomization(dir: string): Kustomization {
  return load(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as Kustomization;
}

/** Renders offline (see the file comment for what is supported). */
export function renderOffline(dir: string): K8sObject[] {
  const k = readKustomization(dir);
  for (const key of Object.keys(k)) if (!SUPPORTED.has(key)) throw new Error(`${dir}: kustomization field ${key} is not supported offline`);
  const objects: K8sObject[] = [];
  for (const r of k.resources ?? []) {
    const path = resolve(dir, r);
    if (statSync(path).isDirectory()) objects.push(...renderOffline(path));
    else objects.push(...(loadAll(readFileSync(path, 'utf8')).filter(Boolean) as K8sObject[]));
  }
  for (const p of k.patches ?? []) {
    const ops = load(readFileSync(resolve(dir, p.path), 'utf8')) as Op[];
    const targets = objects.filter((o) => o.kind === p.target.kind && o.metadata.name === p.target.name);
    if (targets.length === 0) throw new Error(`${dir}: patch ${p.path} matches nothing`);
    for (const o of targets) for (const op of ops) applyOp(o, op);
  }
  for (const img of k.images ?? []) {
    for (const o of objects) for (const c of containersOf(o)) {
      if (imageName(c.image) !== img.name) continue;
      const tag = img.newTag ?? c.image.slice(imageName(c.image).length + 1);
      c.image = `${img.newName ?? img.name}${tag ? `:${tag}` : ''}`;
    }
  }
  return objects;
}

/** Renders with kubectl when available, else offline. */
export function render(dir: string): K8sObject[] {
  return hasKubectl() ? renderWithKubectl(dir) : renderOffline(dir);
}

/** Every file a kustomization names (resources and patches), recursively, with whether it exists. */
export function referencedFiles(dir: string): { path: string; exists: boolean }[] {
  const k = readKustomization(dir);
  const out: { path: string; exists: boolean }[] = [];
  for (const r of [...(k.resources ?? []), ...(k.patches ?? []).map((p) => p.path)]) {
    const path = resolve(dir, r);
    const exists = existsSync(path);
    out.push({ path, exists });
    if (exists && statSync(path).isDirectory()) {
      out.push({ path: join(path, 'kustomization.yaml'), exists: existsSync(join(path, 'kustomization.yaml')) });
      if (existsSync(join(path, 'kustomization.yaml'))) out.push(...referencedFiles(path));
    }
  }
  return out;
}

function imageName(image: string): string {
  const at = image.indexOf('@');
  const noDigest = at >= 0 ? image.slice(0, at) : image;
  const colon = noDigest.lastIndexOf(':');
  return colon > noDigest.lastIndexOf('/') ? noDigest.slice(0, colon) : noDigest;
}

function containersOf(o: K8sObject): { image: string }[] {
  const spec = (o as { spec?: { template?: { spec?: { containers?: { image: string }[]; initContainers?: { image: string }[] } } } }).spec?.template?.spec;
  return [...(spec?.containers ?? []), ...(spec?.initContainers ?? [])];
}

/** RFC 6902 add / replace / remove on `doc`, in place. */
function applyOp(doc: unknown, op: Op): void {
  const keys = op.path.split('/').slice(1).map((k) => k.replaceAll('~1', '/').replaceAll('~0', '~'));
  const last = keys.pop();
  if (last === undefined) throw new Error(`bad patch path ${op.path}`);
  let parent = doc as Record<string, unknown> | unknown[];
  for (const k of keys) {
    const next = Array.isArray(parent) ? parent[Number(k)] : parent[k];
    if (next === null || typeof next !== 'object') throw new Error(`patch path ${op.path}: ${k} does not exist`);
    parent = next as Record<string, unknown> | unknown[];
  }
  if (Array.isArray(parent)) {
    const i = last === '-' ? parent.length : Number(last);
    if (op.op === 'add') parent.splice(i, 0, op.value);
    else if (i >= parent.length) throw new Error(`patch path ${op.path} does not exist`);
    else if (op.op === 'replace') parent[i] = op.value;
    else parent.splice(i, 1);
    return;
  }
  if (op.op !== 'add' && !(last in parent)) throw new Error(`patch path ${op.path} does not exist`);
  if (op.op === 'remove') delete parent[last];
  else parent[last] = op.value;
}

