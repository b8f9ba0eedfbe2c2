import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { failures } from "./failure-table.js";
import { reasons } from "./reasons.js";

/** The `ErrorInfo.reason` column of the README's error table, every reason named in it. */
function readmeReasons(): string[] {
  const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
  const start = readme.indexOf("| Situation | Code | `ErrorInfo.reason` | Retryable |");
  expect(start, "README has the error table").toBeGreaterThanOrEqual(0);
  const rows = readme.slice(start).split("\n").slice(2);
  const found: string[] = [];
  for (const row of rows) {
    if (!row.startsWith("|")) break;
    const reasonCell = row.split("|")[3] ?? "";
    for (const match of reasonCell.matchAll(/`([A-Z][A-Z_]+)`/g)) found.push(match[1]!);
  }
  return found;
}

describe("ErrorInfo reasons", () => {
  it("are documented in the README's error table, each one, and the table names no other", () => {
    const documented = readmeReasons();
    expect(new Set(documented)).toEqual(new Set(Object.values(reasons)));
  });

  it("are unique: no two names share one reason", () => {
    const values = Object.values(reasons);
    expect(new Set(values).size).toBe(values.length);
  });

  it("cover every failure class of the failure table", () => {
    const declared = new Set<string>(Object.values(reasons));
    for (const failure of Object.values(failures)) expect(declared.has(failure.reason)).toBe(true);
  });
});
