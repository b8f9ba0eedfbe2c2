import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import { CompleteRequestSchema } from "../../gen/sluice/v1/chat_service_pb.js";
import { composeDemoAnswer } from "../../src/providers/demo/demo-answer.js";
import { startSluice, type StartedSluice } from "../helpers/start-sluice.js";
import {
  type BuiltExample,
  buildExample,
  type ExampleName,
  exampleEnv,
  examplesRoot,
  exampleNames,
  missingForExample,
} from "./example-builds.js";
import { repoRoot, run } from "./toolchains.js";

/**
 * The client examples (examples/: Go, Java, Python, TypeScript, curl), built and run with the
 * exact commands of their READMEs against a real Sluice serving examples/sluice.yaml (the
 * demo model, a tenant with the published API key, model "limited" at one request a minute).
 * Each must print, in order: the unary answer, the streamed answer (the same text) and its
 * finish reason, NOT_FOUND with ErrorInfo MODEL_NOT_FOUND, RESOURCE_EXHAUSTED with ErrorInfo
 * RATE_LIMITED and a RetryInfo delay within the minute, DEADLINE_EXCEEDED from a 200 ms
 * deadline on a stream, and a stream cancelled after its first delta; and every line its
 * README says it prints ("…" ends a prefix; the retry delay may differ).
 *
 * Under CI=true a missing toolchain fails its example's test; elsewhere the example is
 * skipped, naming the Debian packages it needs.
 */

const inCI = process.env["CI"] === "true";
const runTimeoutMs = 60_000;
const apiKey = "sk-sluice-examples-only-not-a-secret";

const label: Record<ExampleName, string> = {
  go: "Go",
  java: "Java",
  python: "Python",
  typescript: "TypeScript",
  curl: "curl",
};

const demoAnswer = (text: string): string =>
  composeDemoAnswer(
    create(CompleteRequestSchema, {
      model: "demo",
      messages: [{ role: Role.USER, content: [{ part: { case: "text", value: text } }] }],
    }),
  ).pieces.join("");

/** The lines an example must print, in order (a RegExp where the value varies). */
function expectedLines(name: ExampleName): Array<string | RegExp> {
  const answer = demoAnswer(`Hello from ${label[name]}`);
  return [
    `complete: ${answer}`,
    `stream: ${answer}`,
    name === "curl" ? "stream done: stop" : "stream done: FINISH_REASON_STOP",
    "not found: NOT_FOUND MODEL_NOT_FOUND (domain sluice)",
    /^rate limited: RESOURCE_EXHAUSTED RATE_LIMITED, retry in ([1-9]|[1-5][0-9]|60) s$/,
    "deadline: DEADLINE_EXCEEDED after 200 ms",
    name === "curl" ? "cancel: closed the connection after the first delta" : "cancel: CANCELLED after the first delta",
  ];
}

/** Whether the README's printed line `shown` describes the output line `line`. */
function shows(shown: string, line: string): boolean {
  if (shown.endsWith("…")) return line.startsWith(shown.slice(0, -1));
  if (/retry in \d+ s$/.test(shown)) return line.replace(/retry in \d+ s$/, "") === shown.replace(/retry in \d+ s$/, "");
  return line === shown;
}

const missing = new Map<ExampleName, string[]>(
  await Promise.all(exampleNames.map(async (name) => [name, await missingForExample(name)] as const)),
);
const runnable = exampleNames.filter((name) => missing.get(name)?.length === 0);
for (const name of exampleNames) {
  const lacking = missing.get(name) ?? [];
  if (lacking.length > 0 && !inCI) console.warn(`examples/${name} SKIPPED: this machine lacks ${lacking.join(", ")}`);
}

let gateway: StartedSluice | undefined;
const builds = new Map<ExampleName, PromiseSettledResult<BuiltExample>>();

beforeAll(async () => {
  if (runnable.length === 0) return;
  const document = parse(await readFile(join(examplesRoot, "sluice.yaml"), "utf8")) as Record<string, unknown>;
  const [settled, started] = await Promise.all([
    Promise.allSettled(runnable.map((name) => buildExample(name))),
    startSluice(document),
  ]);
  gateway = started;
  const timings: string[] = [];
  runnable.forEach((name, i) => {
    const result = settled[i]!;
    builds.set(name, result);
    if (result.status === "fulfilled")
      timings.push(`${name} ${result.value.built ? "built" : "cached"} in ${(result.value.ms / 1000).toFixed(1)} s`);
  });
  console.log(`examples: ${timings.join(", ")}`);
}, 300_000);

afterAll(async () => {
  await gateway?.close();
});

describe.concurrent("examples/ against a real Sluice", () => {
  for (const name of exampleNames) {
    it(
      `${name}: unary, stream, ErrorInfo on NOT_FOUND, RetryInfo on RESOURCE_EXHAUSTED, deadline, cancel — as its README shows`,
      async (ctx) => {
        const lacking = missing.get(name) ?? [];
        if (lacking.length > 0) {
          const what = `examples/${name} cannot be built: missing ${lacking.join(", ")}`;
          if (inCI) throw new Error(`${what}. Under CI=true every example must run; .ci/run installs these packages.`);
          ctx.skip(`${what} (skipped outside CI)`);
        }
        const build = builds.get(name);
        if (build === undefined || gateway === undefined) throw new Error(`examples/${name} was not built`);
        if (build.status === "rejected") throw build.reason;
        const { out, run: runBlock, prints } = build.value;
        const result = await run("bash", ["-euo", "pipefail", "-c", runBlock], {
          cwd: repoRoot,
          env: exampleEnv(out, { SLUICE_URL: gateway.url, SLUICE_API_KEY: apiKey }),
          timeoutMs: runTimeoutMs,
        });
        const output = [
          `$ ${runBlock.trim()}`,
          `exit: ${result.timedOut ? `killed after ${runTimeoutMs} ms` : (result.code ?? result.signal)}`,
          `--- stdout\n${result.stdout}--- stderr\n${result.stderr}`,
        ].join("\n");
        expect(result.code, output).toBe(0);
        const lines = result.stdout.trimEnd().split("\n");
        const expected = expectedLines(name);
        expect(lines.length, output).toBe(expected.length);
        expected.forEach((want, i) => {
          if (typeof want === "string") expect(lines[i], output).toBe(want);
          else expect(lines[i], output).toMatch(want);
        });
        for (const shown of prints) {
          expect(
            lines.some((line) => shows(shown, line)),
            `examples/${name}/README.md shows "${shown}", which the example did not print\n${output}`,
          ).toBe(true);
        }
      },
      runTimeoutMs + 10_000,
    );
  }
});
