/**
 * Helpers of the observability tests: the PromQL expressions of the Grafana
 * dashboard and of the PrometheusRule alerts, the metric names they use, the
 * sample names a /metrics exposition offers, and promtool.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dump, load } from 'js-yaml';

export const ROOT = new URL('../../../', import.meta.url).pathname;
export const DASHBOARD = join(ROOT, 'deploy/grafana/gentune-dashboard.json');
export const PROMETHEUS_RULE = join(ROOT, 'deploy/k8s/base/prometheusrule.yaml');

/** Debian's package `prometheus` installs both. */
export const PROMTOOL = '/usr/bin/promtool';
export const PROMETHEUS = '/usr/bin/prometheus';
/** Why promtool cannot run here, or false when it is installed. */
export const noPromtool: string | false = !existsSync(PROMTOOL) && 'promtool not installed (apt-get install prometheus)';

interface Panel {
  title?: string;
  type: string;
  targets?: { expr: string }[];
  panels?: Panel[];
}

/** Every panel of the dashboard, rows' nested panels included. */
export function dashboardPanels(path = DASHBOARD): Panel[] {
  const dash = JSON.parse(readFileSync(path, 'utf8')) as { panels: Panel[] };
  return dash.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

/** Every target expression of the dashboard, with its panel's title. */
export function dashboardExpressions(path = DASHBOARD): { panel: string; expr: string }[] {
  return dashboardPanels(path).flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title ?? '', expr: t.expr })));
}

/** Grafana's variables -> values plain Prometheus accepts. */
export function expandGrafanaVariables(expr: string): string {
  return expr
    .replaceAll('$__rate_interval', '1m')
    .replaceAll('$__interval', '15s')
    .replace(/\$namespace|\$pod/g, '.*');
}

export interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** The rule groups of the PrometheusRule (a Prometheus rules file's `groups`). */
export function ruleGroups(path = PROMETHEUS_RULE): { name: string; rules: AlertRule[] }[] {
  const doc = load(readFileSync(path, 'utf8')) as { spec: { groups: { name: string; rules: AlertRule[] }[] } };
  return doc.spec.groups;
}

/** gentune metric names an expression uses. */
export function metricNames(expr: string): string[] {
  return [...new Set(expr.match(/\bgentune_[a-zA-Z0-9_]+/g) ?? [])];
}

/**
 * Names a query may select in an exposition: each family's name and, for
 * histograms and summaries, its _bucket/_sum/_count series; families are
 * taken from `# TYPE` lines so that labelled families without samples yet count.
 */
export function exposedNames(exposition: string): Set<string> {
  const names = new Set<string>();
  for (const line of exposition.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type) {
      const [, name, kind] = type;
      names.add(name);
      if (kind === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name + s);
      if (kind === 'summary') for (const s of ['_sum', '_count']) names.add(name + s);
    } else if (line && !line.startsWith('#')) {
      names.add(line.split(/[{ ]/, 1)[0]);
    }
  }
  return names;
}

/** Runs promtool with `args` and `input` on stdin. */
export function promtool(args: string[], input?: string): { status: number | null; output: string } {
  const r = spawnSync(PROMTOOL, args, { input, encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/** `promtool check rules` on a rules file made of `groups`. */
export function checkRules(groups: unknown[]): { status: number | null; output: string } {
  const dir = mkdtempSync(join(tmpdir(), 'gentune-rules-'));
  try {
    const file = join(dir, 'rules.yaml');
    writeFileSync(file, dump({ groups }));
    return promtool(['check', 'rules', file]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
