import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, realpath, rm, stat, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { listFiles } from "./client-builds.js";
import { buildRoot, exists, gocode, missingFor, protoRoot, repoRoot, run, which, type RunResult } from "./toolchains.js";

/**
 * The client examples (examples/<language>/), built and run with the exact commands of their
 * READMEs: the first ```sh block under "## Generate…" builds, the first under "## Run" runs,
 * each with `bash -euo pipefail` from the repository root and OUT pointing at the build's
 * directory. Builds are cached in test/clients/.build/example-<language>-<key>, keyed by the
 * content of proto/, the example's directory and this file, and the identity of the tools, as
 * the cross-language clients' builds are (client-builds.ts).
 */

export type ExampleName = "go" | "java" | "python" | "typescript" | "curl";
export const exampleNames: readonly ExampleName[] = ["go", "java", "python", "typescript", "curl"];
export const examplesRoot = join(repoRoot, "examples");

/** The sh blocks of an example's README: `build` (absent for curl) and `run`. */
export async function readmeCommands(name: ExampleName): Promise<{ build?: string; run: string; prints: string[] }> {
  const readme = await readFile(join(examplesRoot, name, "README.md"), "utf8");
  const sections = readme.split(/^## /m).slice(1);
  const block = (section: string | undefined, lang: string): string | undefined =>
    section === undefined ? undefined : new RegExp(`\`\`\`${lang}\\n([\\s\\S]*?)\`\`\``).exec(section)?.[1];
  const build = block(
    sections.find((s) => s.startsWith("Generate")),
    "sh",
  );
  const runSection = sections.find((s) => s.startsWith("Run"));
  const runBlock = block(runSection, "sh");
  if (runBlock === undefined) throw new Error(`examples/${name}/README.md: no sh block under "## Run"`);
  // "It prints …:" and the plain ``` block after it: what the example's output must show.
  const printed = runSection === undefined ? undefined : /It prints[^\n]*\n\n```\n([\s\S]*?)```/.exec(runSection)?.[1];
  if (printed === undefined) throw new Error(`examples/${name}/README.md: no "It prints" block under "## Run"`);
  return { ...(build === undefined ? {} : { build }), run: runBlock, prints: printed.trimEnd().split("\n") };
}

/** What the machine lacks to build and run an example (the Debian packages, by name). */
export async function missingForExample(name: ExampleName): Promise<string[]> {
  switch (name) {
    case "go": {
      const missing = await missingFor("go");
      if (!(await exists(`${gocode}/src/google.golang.org/genproto/googleapis/rpc/errdetails`))) {
        missing.push(
          `${gocode}/src/google.golang.org/genproto/googleapis/rpc/errdetails (Debian package golang-google-genproto-dev)`,
        );
      }
      return missing;
    }
    case "java":
    case "python":
      return missingFor(name);
    case "typescript":
      return [];
    case "curl":
      return (await which("curl")) === undefined ? ["curl (Debian package curl)"] : [];
  }
}

const toolsOf: Record<ExampleName, string[]> = {
  go: ["go", "protoc", "protoc-gen-go", "protoc-gen-go-grpc"],
  java: ["javac", "java", "protoc", "/usr/bin/grpc_java_plugin"],
  python: ["protoc", "/usr/bin/grpc_python_plugin", "/usr/bin/python3"],
  typescript: [],
  curl: [],
};

async function buildKey(name: ExampleName, build: string): Promise<string> {
  const hash = createHash("sha256").update(`${name}\n${build}\n`);
  for (const dir of [protoRoot, join(examplesRoot, name)]) {
    for (const file of await listFiles(dir)) {
      if (file.startsWith("gen/")) continue;
      hash.update(`${relative(repoRoot, join(dir, file))}\n`).update(await readFile(join(dir, file)));
    }
  }
  hash.update(await readFile(fileURLToPath(import.meta.url)));
  for (const tool of toolsOf[name]) {
    const found = tool.startsWith("/") ? tool : await which(tool);
    const resolved = found === undefined ? tool : await realpath(found).catch(() => found);
    const info = await stat(resolved).catch(() => undefined);
    hash.update(`${resolved} ${info?.size ?? "-"} ${info?.mtimeMs ?? "-"}\n`);
  }
  if (name === "go")
    hash.update(String((await stat(`${gocode}/src/google.golang.org/grpc/version.go`).catch(() => undefined))?.mtimeMs));
  return hash.digest("hex").slice(0, 16);
}

/** Environment of the README commands: OUT, a shared Go build cache, no module proxy. */
export const exampleEnv = (out: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({
  ...process.env,
  OUT: out,
  GOCACHE: join(buildRoot, "go-cache"),
  ...extra,
});

export interface BuiltExample {
  readonly name: ExampleName;
  readonly out: string;
  readonly built: boolean;
  readonly ms: number;
  readonly run: string;
  readonly prints: readonly string[];
}

/**
 * Builds an example with its README's commands, or reuses .build/example-<name>-<key>. The
 * TypeScript example generates into examples/typescript/gen (gitignored) and is type-checked
 * every time (seconds); curl has nothing to build.
 */
export async function buildExample(name: ExampleName): Promise<BuiltExample> {
  const started = performance.now();
  const { build, run: runBlock, prints } = await readmeCommands(name);
  const result = (out: string, built: boolean): BuiltExample => ({
    name,
    out,
    built,
    ms: performance.now() - started,
    run: runBlock,
    prints,
  });
  if (build === undefined) return result(buildRoot, false);
  const script = async (out: string) => {
    const done: RunResult = await run("bash", ["-euo", "pipefail", "-c", build], {
      cwd: repoRoot,
      env: exampleEnv(out),
      timeoutMs: 240_000,
    });
    if (done.code !== 0) {
      throw new Error(
        `examples/${name}: the README's build commands failed (exit ${done.code ?? done.signal}):\n${build}\n${done.stdout}${done.stderr}`,
      );
    }
  };
  if (name === "typescript") {
    await script(buildRoot);
    return result(buildRoot, true);
  }
  const key = await buildKey(name, build);
  const dir = join(buildRoot, `example-${name}-${key}`);
  if (await exists(join(dir, "BUILD-COMPLETE"))) return result(dir, false);
  // Built where it will stay (Go's and Java's outputs do not depend on the path, but a
  // partial build must never look complete): a fresh directory, marked complete last.
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await script(dir);
  await writeFile(join(dir, "BUILD-COMPLETE"), `${key}\n`);
  for (const entry of await readdir(buildRoot)) {
    if (entry.startsWith(`example-${name}-`) && entry !== `example-${name}-${key}`) {
      await rm(join(buildRoot, entry), { recursive: true, force: true });
    }
  }
  return result(dir, true);
}
