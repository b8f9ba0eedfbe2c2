import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSluice, type StartedSluice } from "../helpers/start-sluice.js";
import { defaultConfigDocument } from "../../src/config/default-config.js";

/**
 * The README's "Try it" section, run as a reader would: each ```sh block against a real
 * Sluice on the embedded default (its address put in place of 127.0.0.1:8080), its output
 * compared with the plain block after it. In the expected text `…` stands for what differs
 * each run (ids, times, encoded details): within a line it matches any characters, and a
 * line that is only `…` matches one or more lines. Needs bash, curl and perl (.ci/run
 * installs curl; bash and perl are in every Debian).
 */
const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
const section = readme.slice(readme.indexOf("## Try it\n"), readme.indexOf("\n## ", readme.indexOf("## Try it\n") + 1));
const blocks = [...section.matchAll(/```(\w*)\n([\s\S]*?)```/g)].map(([, lang, body]) => ({ lang: lang!, body: body! }));
const examples: { command: string; expected: string }[] = [];
blocks.forEach((block, i) => {
  const next = blocks[i + 1];
  if (block.lang === "sh" && next !== undefined && next.lang === "") examples.push({ command: block.body, expected: next.body });
});

let gateway: StartedSluice;
beforeAll(async () => {
  gateway = await startSluice(defaultConfigDocument({}));
});
afterAll(() => gateway?.close());

function runShell(command: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", ["-c", command], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** One expected line as a regular expression: `…` matches any characters. */
function linePattern(line: string): RegExp {
  return new RegExp(
    `^${line
      .split("…")
      .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
      .join(".*?")}$`,
    "s",
  );
}

/** Whether `actual` lines match `expected` lines, a line of only `…` standing for one or more lines. */
function linesMatch(actual: readonly string[], expected: readonly string[]): boolean {
  if (expected.length === 0) return actual.length === 0;
  const [first, ...rest] = expected;
  if (first === "…") {
    for (let skip = 1; skip <= actual.length; skip++) if (linesMatch(actual.slice(skip), rest)) return true;
    return false;
  }
  return actual.length > 0 && linePattern(first!).test(actual[0]!) && linesMatch(actual.slice(1), rest);
}

describe("README: Try it", () => {
  it("has examples to run", () => {
    expect(examples.length).toBeGreaterThanOrEqual(5);
  });

  for (const [i, { command, expected }] of examples.entries()) {
    it(`example ${i + 1}: ${command.split("\n")[0]!.slice(0, 60)}`, async () => {
      const result = await runShell(command.replaceAll("127.0.0.1:8080", `${gateway.host}:${gateway.port}`));
      expect(result.code, result.stderr).toBe(0);
      const actual = result.stdout.replace(/\n$/, "").split("\n");
      const wanted = expected.replace(/\n$/, "").split("\n");
      expect(linesMatch(actual, wanted), `output:\n${result.stdout}\nexpected:\n${expected}`).toBe(true);
    });
  }
});
