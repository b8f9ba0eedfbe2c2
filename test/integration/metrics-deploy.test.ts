import { dirname } from "node:path";
import { describe, expect, it } from "vitest";
import { deployExprs, deployFiles, readDashboard } from "../helpers/metrics-deploy.js";
import { promtoolPath, requireTool, runTool } from "../helpers/prometheus-server.js";

// deploy/ as an operator uses it: the alert rules load in Prometheus and fire when they
// should (promtool's rule unit tests), the dashboard imports into Grafana. That they name
// only metrics and labels Sluice exports, and are valid PromQL, is checked against a real
// gateway and a real Prometheus in metrics.test.ts.

describe("deploy/prometheus", () => {
  it("alerts.yml passes promtool check rules", async (ctx) => {
    const promtool = await requireTool(promtoolPath, (note) => ctx.skip(note));
    const result = await runTool(promtool, ["check", "rules", deployFiles.alerts]);
    expect(result.stdout).toContain("SUCCESS: 4 rules found");
    expect([result.code, result.stderr]).toEqual([0, ""]);
  });

  it("alerts.test.yml: every alert fires when it should and only then (promtool test rules)", async (ctx) => {
    const promtool = await requireTool(promtoolPath, (note) => ctx.skip(note));
    // promtool resolves the test file's rule_files relative to the working directory.
    const result = await runTool(promtool, ["test", "rules", "alerts.test.yml"], { cwd: dirname(deployFiles.alertTests) });
    expect(result.stdout + result.stderr).toContain("SUCCESS");
    expect(result.code).toBe(0);
  });
});

describe("deploy/grafana/sluice-dashboard.json", () => {
  it("is a Grafana dashboard: panels with unique ids inside the 24-column grid, each with a query, on a Prometheus data source variable", () => {
    const dashboard = readDashboard() as unknown as {
      uid: string;
      panels: Array<{ id: number; type: string; gridPos: { x: number; w: number }; datasource?: { uid: string } }>;
      templating: { list: Array<{ name: string }> };
    };
    expect(dashboard.uid).toBe("sluice-overview");
    const ids = dashboard.panels.map((panel) => panel.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const panel of dashboard.panels) {
      expect(panel.gridPos.x + panel.gridPos.w).toBeLessThanOrEqual(24);
      if (panel.type !== "row") expect(panel.datasource?.uid).toBe("${datasource}");
    }
    expect(dashboard.templating.list.map((variable) => variable.name)).toEqual(["datasource", "job", "alias"]);
    const queries = deployExprs().filter((e) => e.where.startsWith("dashboard"));
    expect(queries.length).toBeGreaterThan(20);
    for (const { expr } of queries) expect(expr.trim()).not.toBe("");
  });
});
