/**
 * deploy/k8s/overlays/cpu-trainers: serving replicas with GENTUNE_ROLE=serve
 * and a trainer Deployment with GENTUNE_ROLE=train, on the same volume;
 * the Services and the PodDisruptionBudget select the serving pods only, and
 * every object validates against its schema.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Deployment } from 'kubernetes-models/apps/v1';
import { resolveConfig } from '../../../src/engine/config.js';
import { type K8sObject, referencedFiles, render } from './kustomize.js';
import { ROOT } from './promql.js';

const DIR = join(ROOT, 'deploy/k8s/overlays/cpu-trainers');

interface Pod {
  metadata: { labels: Record<string, string> };
  spec: {
    containers: { image: string; env?: { name: string; value: string }[]; volumeMounts: { name: string; mountPath: string }[] }[];
    volumes: { name: string; persistentVolumeClaim?: { claimName: string } }[];
  };
}
type DeploymentLike = K8sObject & { spec: { template: Pod } };
const selects = (selector: Record<string, string>, labels: Record<string, string> = {}) => Object.entries(selector).every(([k, v]) => labels[k] === v);

test('the trainers overlay: serving replicas serve, trainers train, on one volume; Services and PDB select the serving pods only', () => {
  for (const f of referencedFiles(DIR)) assert.ok(f.exists, `${f.path} is missing`);
  const objects = render(DIR);
  const deployments = objects.filter((o) => o.kind === 'Deployment') as DeploymentLike[];
  assert.deepEqual(deployments.map((d) => d.metadata.name).sort(), ['gentune', 'gentune-trainer']);
  const configMap = objects.find((o) => o.kind === 'ConfigMap') as K8sObject & { data: Record<string, string> };
  const role = (d: DeploymentLike) => {
    const c = d.spec.template.spec.containers[0];
    const env = Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]));
    return resolveConfig({}, { ...configMap.data, ...env });
  };
  const serving = deployments.find((d) => d.metadata.name === 'gentune')!;
  const trainer = deployments.find((d) => d.metadata.name === 'gentune-trainer')!;
  assert.equal(role(serving).role, 'serve');
  assert.equal(role(trainer).role, 'train');
  for (const d of deployments) {
    assert.doesNotThrow(() => new Deployment(d as never).validate(), d.metadata.name);
    const pod = d.spec.template;
    assert.notEqual(pod.spec.containers[0].image, 'gentune', `${d.metadata.name}: the overlay sets the image`);
    const data = pod.spec.volumes.find((v) => v.persistentVolumeClaim?.claimName === 'gentune-data');
    assert.ok(data, `${d.metadata.name} mounts the shared volume`);
    assert.deepEqual(pod.spec.containers[0].volumeMounts.filter((m) => m.name === data.name).map((m) => m.mountPath), [role(d).dataDir]);
  }
  for (const o of objects.filter((x) => x.kind === 'Service' || x.kind === 'PodDisruptionBudget')) {
    const spec = (o as K8sObject & { spec: { selector: Record<string, string> & { matchLabels?: Record<string, string> } } }).spec;
    const selector = spec.selector.matchLabels ?? spec.selector;
    assert.ok(selects(selector, serving.spec.template.metadata.labels), `${o.kind}/${o.metadata.name} selects the serving pods`);
    assert.ok(!selects(selector, trainer.spec.template.metadata.labels), `${o.kind}/${o.metadata.name} does not select the trainers`);
  }
});
