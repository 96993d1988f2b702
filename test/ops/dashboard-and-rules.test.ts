import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withTestServer } from '../support/harness';
import { describeIf } from '../support/services';

// The Grafana dashboard and the Prometheus alerting rules shipped in src/ops/ (issue 27) query
// only what Tollgate exposes: every metric they name is in a running server's /metrics, with
// every label they select or group by. The rules pass `promtool check rules`, and so do the
// dashboard's queries (written out as recording rules), when promtool is installed (always in CI).
const OPS = join(__dirname, '../../src/ops');
const DASHBOARD = join(OPS, 'grafana-dashboard.json');
const RULES = join(OPS, 'prometheus-rules.yml');

/** Labels Prometheus adds when it scrapes (not in /metrics). */
const TARGET_LABELS = new Set(['instance', 'job']);

type Panel = { title?: string; targets?: { expr: string }[]; panels?: Panel[] };
function dashboardQueries(): { where: string; expr: string }[] {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[]; templating: { list: { name: string; query: { query: string } }[] } };
  const out: { where: string; expr: string }[] = [];
  const walk = (panels: Panel[]) => {
    for (const panel of panels) {
      for (const target of panel.targets ?? []) out.push({ where: `panel "${panel.title}"`, expr: target.expr });
      walk(panel.panels ?? []);
    }
  };
  walk(dashboard.panels);
  for (const variable of dashboard.templating.list) out.push({ where: `variable ${variable.name}`, expr: variable.query.query });
  return out;
}

/** Each rule's alert name and expr, read from the YAML (one-line exprs and `|` blocks). */
function ruleQueries(): { where: string; expr: string }[] {
  const lines = readFileSync(RULES, 'utf8').split('\n');
  const out: { where: string; expr: string }[] = [];
  let alert = '';
  for (let i = 0; i < lines.length; i++) {
    const name = /^\s*- alert:\s*(\S+)/.exec(lines[i]);
    if (name) alert = name[1];
    const expr = /^(\s*)expr:\s*(.*)$/.exec(lines[i]);
    if (!expr) continue;
    let text = expr[2];
    if (text === '|') {
      const block: string[] = [];
      while (i + 1 < lines.length && (lines[i + 1].trim() === '' || lines[i + 1].search(/\S/) > expr[1].length)) block.push(lines[++i].trim());
      text = block.join(' ');
    }
    out.push({ where: `alert ${alert}`, expr: text });
  }
  return out;
}

/** The metric names an expression reads, with the labels each selector names, and the labels it groups by. */
function references(expr: string): { metrics: Map<string, Set<string>>; grouping: Set<string> } {
  const metrics = new Map<string, Set<string>>();
  for (const match of expr.matchAll(/\b((?:tollgate|process|nodejs)_[a-z0-9_]+)\s*(\{([^}]*)\})?/g)) {
    const labels = metrics.get(match[1]) ?? new Set<string>();
    for (const label of (match[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)) labels.add(label[1]);
    metrics.set(match[1], labels);
  }
  const grouping = new Set<string>();
  for (const match of expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) for (const label of match[1].split(',')) if (label.trim()) grouping.add(label.trim());
  // label_values(metric, label): a label the metric must carry.
  for (const match of expr.matchAll(/label_values\(\s*[a-z0-9_]+\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)/g)) grouping.add(match[1]);
  return { metrics, grouping };
}

describe('the Grafana dashboard and Prometheus rules in src/ops', () => {
  it('every metric they query is in a running server\'s /metrics, with every label they select or group by', async () => {
    await withTestServer({}, async (t) => {
      // Traffic that gives the labelled series samples: answers, a refusal, a failed authentication, usage written.
      const key = await t.createKey({ scopes: ['read'], budget: { points: 1, duration: 60 } });
      expect((await t.gql('{ station(id: "LHR") { name } }', {}, key.secret)).status).toBe(200);
      expect((await t.gql('{ station(id: "LHR") { name } }', {}, key.secret)).status).toBe(429);
      expect((await t.gql('{ station(id: "LHR") { name } }', {}, 'tg_not_a_key')).status).toBe(401);
      await t.server.tollgate.services.usage.writer!.flush();
      const text = await (await fetch(`${t.url}/metrics`)).text();

      // What /metrics says: each family (HELP), and the labels seen on its samples.
      const families = new Set([...text.matchAll(/^# HELP (\S+)/gm)].map((m) => m[1]));
      const sampled = new Map<string, Set<string>>();
      for (const m of text.matchAll(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? /gm)) {
        const labels = sampled.get(m[1]) ?? new Set<string>();
        for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) labels.add(l[1]);
        sampled.set(m[1], labels);
      }
      const family = (name: string) => (families.has(name) ? name : name.replace(/_(bucket|sum|count)$/, ''));
      /**
       * A series with no sample yet (a failure counter on a healthy server) shows only its HELP
       * line: its labels are read from the metric the server registered under that name.
       */
      const labelsOf = (name: string): Set<string> => {
        const seen = sampled.get(name);
        const registered = t.server.metrics.registry.getSingleMetric(family(name)) as unknown as { labelNames?: string[] } | undefined;
        const labels = new Set([...(seen ?? []), ...(registered?.labelNames ?? [])]);
        if (name.endsWith('_bucket')) labels.add('le');
        return labels;
      };

      const queries = [...dashboardQueries(), ...ruleQueries()];
      expect(queries.length).toBeGreaterThanOrEqual(20);
      const problems: string[] = [];
      const queried = new Set<string>();
      for (const { where, expr } of queries) {
        const { metrics, grouping } = references(expr);
        if (!metrics.size) problems.push(`${where}: queries no Tollgate metric: ${expr}`);
        const available = new Set<string>(TARGET_LABELS);
        for (const [name, labels] of metrics) {
          queried.add(family(name));
          if (!families.has(family(name))) {
            problems.push(`${where}: ${name} is not in /metrics`);
            continue;
          }
          const has = labelsOf(name);
          for (const label of has) available.add(label);
          for (const label of labels) if (!has.has(label) && !TARGET_LABELS.has(label)) problems.push(`${where}: ${name} has no label "${label}"`);
        }
        for (const label of grouping) if (!available.has(label)) problems.push(`${where}: groups by "${label}", which none of its metrics carries`);
      }
      expect(problems).toEqual([]);
      // What the issue asks the dashboard and rules to cover.
      for (const name of [
        'tollgate_requests_total', 'tollgate_rate_limit_rejections_total', 'tollgate_operation_cost_points', 'tollgate_limiter_store_duration_seconds',
        'tollgate_limiter_store_failures_total', 'tollgate_key_cache_lookups_total', 'tollgate_db_queries_total', 'tollgate_webhook_deliveries_total',
        'tollgate_usage_writes_total', 'tollgate_log_lines_dropped_total',
      ]) expect(queried).toContain(name);
      expect(ruleQueries().map((r) => r.where)).toEqual([
        'alert TollgateLimiterStoreFailing', 'alert TollgateServerErrors', 'alert TollgateLogLinesDropped', 'alert TollgateUsageWritesFailing', 'alert TollgateWebhookDeliveriesFailing',
      ]);
    });
  });

  it('the package ships both files', () => {
    const files = (JSON.parse(readFileSync(join(__dirname, '../../package.json'), 'utf8')) as { files: string[] }).files;
    expect(files).toEqual(expect.arrayContaining(['src/ops/grafana-dashboard.json', 'src/ops/prometheus-rules.yml']));
  });
});

describeIf(hasPromtool(), 'promtool (Debian package prometheus)', 'promtool check rules', () => {
  it('passes for the alerting rules', () => {
    expect(execFileSync('promtool', ['check', 'rules', RULES], { encoding: 'utf8' })).toMatch(/SUCCESS: 5 rules found/);
  });

  it('passes for every dashboard query, written out as recording rules (Grafana\'s variables filled in)', () => {
    const queries = dashboardQueries().filter((q) => !q.expr.startsWith('label_values('));
    const rules = queries.map((q, i) => `      - record: tollgate:dashboard_query_${i}\n        expr: ${JSON.stringify(q.expr.replaceAll('$__rate_interval', '5m').replaceAll('$instance', '.*'))}`);
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-dashboard-'));
    try {
      const file = join(dir, 'dashboard-rules.yml');
      writeFileSync(file, `groups:\n  - name: dashboard\n    rules:\n${rules.join('\n')}\n`);
      expect(execFileSync('promtool', ['check', 'rules', file], { encoding: 'utf8' })).toMatch(new RegExp(`SUCCESS: ${queries.length} rules found`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function hasPromtool(): boolean {
  try {
    execFileSync('promtool', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
