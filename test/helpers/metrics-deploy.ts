import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";

/** deploy/: the alert rules, their unit tests and the Grafana dashboard. */
export const deployFiles = {
  alerts: fileURLToPath(new URL("../../deploy/prometheus/alerts.yml", import.meta.url)),
  alertTests: fileURLToPath(new URL("../../deploy/prometheus/alerts.test.yml", import.meta.url)),
  dashboard: fileURLToPath(new URL("../../deploy/grafana/sluice-dashboard.json", import.meta.url)),
};

/** One PromQL expression of deploy/, and where it is. */
export interface DeployExpr {
  readonly where: string;
  readonly expr: string;
}

interface Panel {
  readonly type: string;
  readonly title: string;
  readonly targets?: ReadonlyArray<{ readonly expr?: string }>;
  readonly panels?: readonly Panel[];
}

export function readDashboard(): { panels: Panel[]; templating: { list: Array<{ name: string; query?: unknown }> } } {
  return JSON.parse(readFileSync(deployFiles.dashboard, "utf8"));
}

/** Every alert rule's expression, and every dashboard panel's and variable query's. */
export function deployExprs(): DeployExpr[] {
  const rules = parse(readFileSync(deployFiles.alerts, "utf8")) as {
    groups: Array<{ rules: Array<{ alert: string; expr: string }> }>;
  };
  const exprs: DeployExpr[] = rules.groups.flatMap((group) =>
    group.rules.map((rule) => ({ where: `alerts.yml ${rule.alert}`, expr: rule.expr })),
  );
  const dashboard = readDashboard();
  const panels = (list: readonly Panel[]): Panel[] => list.flatMap((panel) => [panel, ...panels(panel.panels ?? [])]);
  for (const panel of panels(dashboard.panels)) {
    for (const target of panel.targets ?? []) {
      if (target.expr !== undefined) exprs.push({ where: `dashboard "${panel.title}"`, expr: target.expr });
    }
  }
  for (const variable of dashboard.templating.list) {
    const query = (variable.query as { query?: string } | undefined)?.query;
    const inner = query === undefined ? undefined : /^label_values\((.*), *\w+\)$/.exec(query)?.[1];
    if (inner !== undefined) exprs.push({ where: `dashboard variable $${variable.name}`, expr: inner });
  }
  return exprs;
}

/** The expression as Prometheus would run it from the dashboard: its variables at "everything" values. */
export function withDashboardVariables(expr: string): string {
  return expr.replaceAll("$__rate_interval", "1m").replaceAll('"$job"', '".*"').replaceAll('"$alias"', '".*"');
}

/** Metric names an expression selects (Sluice's, the GenAI ones and the process metrics). */
export function metricNames(expr: string): string[] {
  return [...new Set(expr.match(/\b(?:sluice|gen_ai|process|nodejs)_[a-z0-9_]+\b/g) ?? [])];
}

/** Label names an expression filters on (`{label=...}`) or aggregates by (`by (a, b)`). */
export function labelNames(expr: string): { selected: Map<string, string[]>; groupedBy: string[] } {
  const selected = new Map<string, string[]>();
  for (const match of expr.matchAll(/\b([a-z_][a-z0-9_]*)\{([^}]*)\}/g)) {
    const labels = [...match[2]!.matchAll(/([a-z_][a-z0-9_]*)\s*(?:=~|!~|!=|=)/g)].map((m) => m[1]!);
    selected.set(match[1]!, [...(selected.get(match[1]!) ?? []), ...labels]);
  }
  const groupedBy = [...expr.matchAll(/\bby \(([^)]*)\)/g)].flatMap((m) => m[1]!.split(",").map((l) => l.trim()));
  return { selected, groupedBy };
}
