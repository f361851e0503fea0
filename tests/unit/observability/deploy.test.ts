/**
 * deploy/: the kustomize base and overlays render, every object validates
 * against its Kubernetes (or Prometheus Operator) schema, and the pieces agree
 * with each other and with the server (ports, data dir, grace period, labels,
 * GENTUNE_* settings); the alert rules pass promtool; the Dockerfiles and the
 * dashboard have what the README promises.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PrometheusRule, ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, PersistentVolumeClaim, Service } from 'kubernetes-models/v1';
import { defaultConfig, envName, resolveConfig } from '../../../src/engine/config.js';
import { MIN_CHECKPOINT_WAIT_MS } from '../../../src/engine/fine-tune-runner.js';
import { hasKubectl, type K8sObject, referencedFiles, render, renderOffline, renderWithKubectl } from './kustomize.js';
import { checkRules, dashboardExpressions, dashboardPanels, noPromtool, ROOT, ruleGroups } from './promql.js';
import { requirePeer, skipWithoutPeer } from '../../helpers/test-peer.js';

const K8S = join(ROOT, 'deploy/k8s');
const OVERLAYS = ['cpu', 'gpu'] as const;

/** apiVersion/kind -> the model class whose validate() checks the schema. */
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'v1/ConfigMap': ConfigMap,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor,
  'monitoring.coreos.com/v1/PrometheusRule': PrometheusRule,
};

// Minimal shapes of what the assertions read.
interface Container {
  name: string;
  image: string;
  args?: string[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string; optional?: boolean } }[];
  ports: { name: string; containerPort: number }[];
  startupProbe?: Probe;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
  resources: { requests?: Record<string, string | number>; limits?: Record<string, string | number> };
  volumeMounts: { name: string; mountPath: string }[];
}
interface Probe {
  grpc?: { port: number; service?: string };
  periodSeconds?: number;
  failureThreshold?: number;
}
interface DeploymentLike extends K8sObject {
  spec: {
    replicas: number;
    selector: { matchLabels: Record<string, string> };
    template: {
      metadata: { labels: Record<string, string> };
      spec: { terminationGracePeriodSeconds: number; containers: Container[]; volumes: { name: string; persistentVolumeClaim?: { claimName: string } }[] };
    };
  };
}
interface ServiceLike extends K8sObject {
  spec: { clusterIP?: string; type?: string; selector: Record<string, string>; ports: { name: string; port: number; targetPort: string | number }[] };
}

const rendered = new Map(OVERLAYS.map((o) => [o, render(join(K8S, 'overlays', o))]));

function one<T extends K8sObject>(objects: K8sObject[], kind: string, pick: (o: T) => boolean = () => true): T {
  const found = objects.filter((o) => o.kind === kind).map((o) => o as T).filter(pick);
  assert.equal(found.length, 1, `expected one ${kind}, found ${found.length}`);
  return found[0];
}

/** True when `selector` selects an object labelled `labels`. */
const selects = (selector: Record<string, string>, labels: Record<string, string> = {}) =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

test('every file a kustomization names exists', () => {
  for (const dir of [join(K8S, 'base'), ...OVERLAYS.map((o) => join(K8S, 'overlays', o))]) {
    for (const f of referencedFiles(dir)) assert.ok(f.exists, `${dir}: ${f.path} is missing`);
  }
});

test('every rendered object validates against its schema', () => {
  for (const [overlay, objects] of rendered) {
    assert.deepEqual(
      objects.map((o) => o.kind).sort(),
      ['ConfigMap', 'Deployment', 'NetworkPolicy', 'PersistentVolumeClaim', 'PodDisruptionBudget', 'PrometheusRule', 'Service', 'Service', 'ServiceMonitor'],
      overlay,
    );
    for (const o of objects) {
      const Model = MODELS[`${o.apiVersion}/${o.kind}`];
      assert.ok(Model, `${overlay}: no schema for ${o.apiVersion} ${o.kind}`);
      assert.doesNotThrow(() => new Model(o as never).validate(), `${overlay}: ${o.kind}/${o.metadata.name}`);
    }
  }
});

test('a schema violation is caught (the validation is not a no-op)', () => {
  const d = structuredClone(one<DeploymentLike>(rendered.get('cpu')!, 'Deployment'));
  (d.spec as unknown as Record<string, unknown>).replicas = 'two';
  assert.throws(() => new Deployment(d as never).validate());
});

test('the offline renderer agrees with kubectl kustomize', { skip: !hasKubectl() && 'kubectl is not installed' }, () => {
  for (const dir of [join(K8S, 'base'), ...OVERLAYS.map((o) => join(K8S, 'overlays', o))]) {
    const key = (o: K8sObject) => `${o.kind}/${o.metadata.name}`;
    const byKey = (objects: K8sObject[]) => new Map(objects.map((o) => [key(o), o]));
    assert.deepEqual(byKey(renderOffline(dir)), byKey(renderWithKubectl(dir)), dir);
  }
});

test('the ConfigMap holds only known GENTUNE_* settings, and they resolve', () => {
  const config = defaultConfig();
  const known = new Set([...Object.keys(config).filter((k) => k !== 'limits'), ...Object.keys(config.limits)].map(envName));
  for (const [overlay, objects] of rendered) {
    const data = one<K8sObject & { data: Record<string, string> }>(objects, 'ConfigMap').data;
    for (const key of Object.keys(data)) assert.ok(known.has(key), `${overlay}: ${key} is not a gentune setting`);
    const resolved = resolveConfig({}, data);
    assert.equal(resolved.host, '0.0.0.0', 'pods must listen on every interface');
    assert.equal(resolved.backend, overlay === 'gpu' ? 'tensorflow' : 'wasm');
  }
});

test('the Deployment: gRPC probes, draining, data volume, ports and resources agree with the server', () => {
  for (const [overlay, objects] of rendered) {
    const config = resolveConfig({}, one<K8sObject & { data: Record<string, string> }>(objects, 'ConfigMap').data);
    const d = one<DeploymentLike>(objects, 'Deployment');
    const pod = d.spec.template;
    assert.ok(selects(d.spec.selector.matchLabels, pod.metadata.labels), 'selector matches the pod template');
    const [c] = pod.spec.containers;
    assert.notEqual(c.image, 'gentune', `${overlay}: the overlay sets the image`);
    assert.equal(c.envFrom?.[0]?.configMapRef?.name, 'gentune');
    assert.deepEqual(c.args, ['serve']);
    for (const probe of [c.livenessProbe, c.readinessProbe, c.startupProbe]) {
      assert.deepEqual(probe?.grpc, { port: config.port, service: '' }, 'native gRPC probe of grpc.health.v1, service ""');
    }
    assert.deepEqual(c.ports.map((p) => [p.name, p.containerPort]), [['grpc', config.port], ['metrics', config.metricsPort], ['http', config.httpPort]]);
    // Draining: the pod gets preStop + the server's grace period + teardown before SIGKILL.
    const preStop = c.lifecycle?.preStop?.exec?.command;
    assert.deepEqual(preStop?.slice(0, 1), ['sleep']);
    const preStopSeconds = Number(preStop?.[1]);
    const checkpointSeconds = MIN_CHECKPOINT_WAIT_MS / 1000;
    assert.ok(
      pod.spec.terminationGracePeriodSeconds >= preStopSeconds + config.graceMs / 1000 + checkpointSeconds + 5,
      'termination grace covers preStop + GENTUNE_GRACE_MS + a running job\'s last checkpoint + 5 s',
    );
    // Access tokens come from an optional Secret, never from the ConfigMap.
    assert.ok(c.envFrom?.some((e) => e.secretRef?.name === 'gentune-tokens' && e.secretRef.optional === true), 'tokens from the optional Secret gentune-tokens');
    const liveness = c.livenessProbe!;
    assert.ok(liveness.periodSeconds! * liveness.failureThreshold! > config.graceMs / 1000, 'liveness does not kill a draining pod');
    const pvc = one<K8sObject>(objects, 'PersistentVolumeClaim');
    const dataVolume = pod.spec.volumes.find((v) => v.persistentVolumeClaim?.claimName === pvc.metadata.name);
    assert.ok(dataVolume, 'the PVC is mounted');
    assert.deepEqual(c.volumeMounts.filter((m) => m.name === dataVolume.name).map((m) => m.mountPath), [config.dataDir]);
    assert.ok(c.resources.requests?.cpu && c.resources.requests.memory && c.resources.limits?.memory, `${overlay}: resources are set`);
    const gpus = c.resources.limits?.['nvidia.com/gpu'];
    if (overlay === 'gpu') assert.equal(Number(gpus), 1);
    else assert.equal(gpus, undefined);
  }
});

test('Services, ServiceMonitor, PodDisruptionBudget and NetworkPolicy select the server pods', () => {
  for (const [overlay, objects] of rendered) {
    const d = one<DeploymentLike>(objects, 'Deployment');
    const podLabels = d.spec.template.metadata.labels;
    const services = objects.filter((o) => o.kind === 'Service') as ServiceLike[];
    const clusterIp = services.find((s) => s.spec.clusterIP !== 'None')!;
    const headless = services.find((s) => s.spec.clusterIP === 'None');
    assert.ok(clusterIp && headless, `${overlay}: a ClusterIP and a headless Service`);
    for (const s of [clusterIp, headless]) {
      assert.ok(selects(s.spec.selector, podLabels), `${s.metadata.name} selects the pods`);
      assert.ok(s.spec.ports.some((p) => p.name === 'grpc' && p.port === 50051 && p.targetPort === 'grpc'));
    }
    assert.ok(clusterIp.spec.ports.some((p) => p.name === 'http' && p.port === 8000 && p.targetPort === 'http'), 'the OpenAI HTTP API is reachable through the Service');
    const monitor = one<K8sObject & { spec: { selector: { matchLabels: Record<string, string> }; endpoints: { port: string; path: string }[] } }>(objects, 'ServiceMonitor');
    const monitored = services.filter((s) => selects(monitor.spec.selector.matchLabels, s.metadata.labels));
    assert.deepEqual(monitored.map((s) => s.metadata.name), [clusterIp.metadata.name], 'one Service is scraped (not the headless one too)');
    for (const e of monitor.spec.endpoints) {
      assert.ok(clusterIp.spec.ports.some((p) => p.name === e.port), `endpoint port ${e.port} exists`);
      assert.equal(e.path, '/metrics');
    }
    const pdb = one<K8sObject & { spec: { selector: { matchLabels: Record<string, string> }; maxUnavailable?: number; minAvailable?: number } }>(objects, 'PodDisruptionBudget');
    assert.ok(selects(pdb.spec.selector.matchLabels, podLabels));
    const policy = one<K8sObject & { spec: { podSelector: { matchLabels: Record<string, string> }; ingress: { ports: { port: number }[] }[] } }>(objects, 'NetworkPolicy');
    assert.ok(selects(policy.spec.podSelector.matchLabels, podLabels));
    const open = policy.spec.ingress.flatMap((r) => r.ports.map((p) => p.port)).sort();
    assert.deepEqual(open, [50051, 8000, 9464].sort());
  }
});

test('the alert rules: the three alerts the runbook names, each with severity and summary', () => {
  const alerts = ruleGroups().flatMap((g) => g.rules);
  for (const name of ['GentuneHighTimeToFirstToken', 'GentuneHighErrorRate', 'GentuneTrainerStuck']) {
    assert.ok(alerts.some((a) => a.alert === name), name);
  }
  for (const a of alerts) {
    assert.ok(a.labels?.severity && a.annotations?.summary, a.alert);
  }
  const stuck = alerts.find((a) => a.alert === 'GentuneTrainerStuck')!;
  assert.match(stuck.expr, /time\(\) - .*gentune_finetune_last_step_timestamp_seconds/s);
  assert.match(stuck.expr, /gentune_finetune_jobs\{state="running"\}/);
});

test('promtool check rules passes on the PrometheusRule groups', { skip: skipWithoutPeer(noPromtool) }, () => {
  requirePeer(noPromtool);
  const r = checkRules(ruleGroups());
  assert.equal(r.status, 0, r.output);
});

test('every dashboard expression is valid PromQL (promtool, as recording rules)', { skip: skipWithoutPeer(noPromtool) }, () => {
  requirePeer(noPromtool);
  const exprs = dashboardExpressions();
  assert.ok(exprs.length >= 20);
  const rules = exprs.map((e, i) => ({ record: `dashboard:expr_${i}`, expr: e.expr.replaceAll('$__rate_interval', '1m').replace(/\$namespace|\$pod/g, '.*') }));
  const r = checkRules([{ name: 'dashboard', rules }]);
  assert.equal(r.status, 0, r.output);
});

test('the dashboard: unique panel ids, a Prometheus datasource variable, the sections the issue asks for', () => {
  const dash = JSON.parse(readFileSync(join(ROOT, 'deploy/grafana/gentune-dashboard.json'), 'utf8')) as {
    uid: string;
    templating: { list: { name: string; type: string; query: unknown }[] };
  };
  assert.ok(dash.uid);
  assert.ok(dash.templating.list.some((v) => v.name === 'datasource' && v.type === 'datasource' && v.query === 'prometheus'));
  const panels = dashboardPanels();
  const ids = panels.map((p) => (p as { id?: number }).id);
  assert.equal(new Set(ids).size, ids.length);
  const rows = panels.filter((p) => p.type === 'row').map((p) => p.title);
  assert.deepEqual(rows, ['Serving latency', 'Throughput', 'Queue and batch', 'Adapters', 'Training', 'Runtime']);
  const exprs = dashboardExpressions().map((e) => e.expr).join('\n');
  for (const q of ['0.5', '0.9', '0.99']) {
    assert.ok(exprs.includes(`histogram_quantile(${q}, sum by (le) (rate(gentune_generation_time_to_first_token_seconds_bucket`), `TTFT p${q}`);
  }
});

test('the Dockerfiles: base images, npm ci, the copied folders, the GPU check', () => {
  const read = (name: string) => readFileSync(join(ROOT, 'deploy/docker', name), 'utf8');
  const cpu = read('Dockerfile.cpu');
  const gpu = read('Dockerfile.gpu');
  assert.match(cpu, /^FROM node:24-slim$/m);
  assert.match(gpu, /^FROM nvidia\/cuda:11\.8\.\d+-cudnn8-runtime-ubuntu22\.04$/m);
  for (const file of [cpu, gpu]) {
    assert.match(file, /RUN npm ci\b/);
    assert.doesNotMatch(file, /--omit=dev/, 'tsx runs the sources: dev dependencies are not optional here');
    for (const dir of ['bin/', 'proto/', 'models/', 'src/']) assert.match(file, new RegExp(`^COPY ${dir} ${dir}$`, 'm'));
    assert.match(file, /^COPY package\.json package-lock\.json \.\/$/m);
    assert.match(file, /EXPOSE 50051 8000 9464/);
  }
  assert.match(cpu, /GENTUNE_BACKEND=wasm/);
  assert.match(gpu, /node -e "require\('@tensorflow\/tfjs-node-gpu'\)"/);
  assert.match(gpu, /libvulkan1/);
  assert.match(gpu, /NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics/);
});
