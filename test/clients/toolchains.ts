import { spawn } from "node:child_process";
import { constants } from "node:fs";
import { access, stat } from "node:fs/promises";
import { delimiter, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * What the cross-language gRPC clients (test/clients/{go,java,python}) need, and how to
 * tell whether this machine has it. Everything comes from Debian packages and works
 * offline: Go builds in GOPATH mode against /usr/share/gocode, Java compiles against the
 * jars in /usr/share/java, Python runs on Debian's /usr/bin/python3 (the python3 first on
 * PATH may be another interpreter, without grpc). Each missing piece is named with the
 * Debian package that provides it, so the skip or failure message says what to install.
 */

export type ClientName = "go" | "java" | "python";
export const clientNames: readonly ClientName[] = ["go", "java", "python"];

export const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(here, "../..");
export const protoRoot = join(repoRoot, "proto");
export const buildRoot = join(here, ".build");
const sharedJava = "/usr/share/java";
export const gocode = "/usr/share/gocode";
export const debianPython = "/usr/bin/python3";

/** The .proto files the clients are generated from, relative to their include root. */
export const sluiceProtos = ["sluice/v1/chat.proto", "sluice/v1/chat_service.proto", "sluice/v1/model_service.proto"];
export const errorDetailsProto = "google/rpc/error_details.proto";
export const statusProto = "google/rpc/status.proto";

export const javaCompileJars = [
  "grpc-api",
  "grpc-context",
  "grpc-stub",
  "grpc-protobuf",
  "grpc-protobuf-lite",
  "protobuf",
  "guava",
  "jsr305",
  // The generated stubs carry @javax.annotation.Generated, which JDK 11+ no longer has.
  "geronimo-annotation-1.3-spec",
];
export const javaRunJars = [
  ...javaCompileJars,
  "grpc-core",
  "grpc-netty",
  "netty-buffer",
  "netty-codec",
  "netty-codec-http",
  "netty-codec-http2",
  "netty-common",
  "netty-handler",
  "netty-resolver",
  "netty-transport",
  "perfmark-api",
];
/** Which Debian package ships each jar, for the "missing" message. */
const jarPackage: Record<string, string> = {
  "grpc-api": "libgrpc-java",
  "grpc-context": "libgrpc-java",
  "grpc-stub": "libgrpc-java",
  "grpc-protobuf": "libgrpc-java",
  "grpc-protobuf-lite": "libgrpc-java",
  "grpc-core": "libgrpc-java",
  "grpc-netty": "libgrpc-java",
  protobuf: "libprotobuf-java",
  guava: "libguava-java",
  jsr305: "libjsr305-java",
  "geronimo-annotation-1.3-spec": "libgeronimo-annotation-1.3-spec-java",
  "perfmark-api": "libperfmark-java",
};
export const jar = (name: string): string => join(sharedJava, `${name}.jar`);
export const classpath = (names: readonly string[]): string => names.map(jar).join(delimiter);

/** A tool the client needs: a command on PATH, an absolute file, or a directory. */
interface Requirement {
  /** How the missing thing is named to the user, with the Debian package that provides it. */
  readonly label: string;
  readonly check: () => Promise<boolean>;
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** The absolute path of `command` on PATH, or undefined. */
export async function which(command: string): Promise<string | undefined> {
  for (const dir of (process.env["PATH"] ?? "").split(delimiter)) {
    if (dir && (await isExecutable(join(dir, command)))) return join(dir, command);
  }
  return undefined;
}

const command = (name: string, pkg: string): Requirement => ({
  label: `${name} (Debian package ${pkg})`,
  check: async () => (await which(name)) !== undefined,
});
const path = (file: string, pkg: string): Requirement => ({
  label: `${file} (Debian package ${pkg})`,
  check: () => exists(file),
});

const protocRequirements: Requirement[] = [
  command("protoc", "protobuf-compiler"),
  // google/protobuf/{any,empty,struct,duration}.proto, found by protoc relative to itself.
  path("/usr/include/google/protobuf/struct.proto", "libprotobuf-dev"),
];

const requirements: Record<ClientName, Requirement[]> = {
  go: [
    ...protocRequirements,
    command("go", "golang-go"),
    command("protoc-gen-go", "protoc-gen-go"),
    command("protoc-gen-go-grpc", "protoc-gen-go-grpc"),
    path(`${gocode}/src/google.golang.org/grpc`, "golang-google-grpc-dev"),
    path(`${gocode}/src/google.golang.org/protobuf`, "golang-google-protobuf-dev"),
    path(`${gocode}/src/github.com/golang/protobuf/proto`, "golang-github-golang-protobuf-1-5-dev"),
  ],
  java: [
    ...protocRequirements,
    command("javac", "openjdk-17-jdk-headless"),
    command("java", "openjdk-17-jre-headless"),
    path("/usr/bin/grpc_java_plugin", "protobuf-compiler-grpc-java-plugin"),
    ...[...new Set(javaRunJars)].map((name) => path(jar(name), jarPackage[name] ?? "libnetty-java")),
  ],
  python: [
    ...protocRequirements,
    path("/usr/bin/grpc_python_plugin", "protobuf-compiler-grpc"),
    {
      label: `${debianPython} able to import grpc and google.protobuf (Debian packages python3-grpcio python3-protobuf)`,
      check: async () => {
        if (!(await isExecutable(debianPython))) return false;
        const result = await run(debianPython, ["-c", "import grpc, google.protobuf"], { timeoutMs: 20_000 });
        return result.code === 0;
      },
    },
  ],
};

/** What this machine lacks to build and run a client: empty when it has everything. */
export async function missingFor(name: ClientName): Promise<string[]> {
  const results = await Promise.all(requirements[name].map(async (r) => ((await r.check()) ? undefined : r.label)));
  return results.filter((label): label is string => label !== undefined);
}

export interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
  readonly ms: number;
}

/** Runs a process to completion (killed after timeoutMs), capturing its output. */
export function run(
  file: string,
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<RunResult> {
  const started = performance.now();
  return new Promise((resolvePromise) => {
    const child = spawn(file, args, {
      cwd: options.cwd ?? repoRoot,
      env: options.env ?? process.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, options.timeoutMs);
    child.on("error", (err) => {
      clearTimeout(timer);
      resolvePromise({ code: null, signal: null, stdout, stderr: `${stderr}${String(err)}\n`, timedOut, ms: 0 });
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout, stderr, timedOut, ms: performance.now() - started });
    });
  });
}
