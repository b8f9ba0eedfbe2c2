import { createHash } from "node:crypto";
import { cp, mkdir, readdir, readFile, realpath, rename, rm, stat, writeFile } from "node:fs/promises";
import { delimiter, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import {
  buildRoot,
  classpath,
  debianPython,
  errorDetailsProto,
  exists,
  gocode,
  here,
  jar,
  javaRunJars,
  protoRoot,
  repoRoot,
  run,
  sluiceProtos,
  statusProto,
  which,
  type ClientName,
} from "./toolchains.js";

/**
 * Code generation and builds for the cross-language gRPC clients. Generated code and
 * binaries live in test/clients/.build/ (gitignored), one directory per client keyed by a
 * hash of everything the build reads, so an unchanged client is not rebuilt; nothing
 * generated is committed.
 */

/** Runs a build step; throws with the command and its output when it fails. */
async function step(file: string, args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  const result = await run(file, args, { ...options, timeoutMs: 240_000 });
  if (result.code !== 0) {
    const why = result.timedOut ? "timed out" : `exited with ${result.code ?? result.signal}`;
    throw new Error(`${file} ${args.join(" ")} ${why}:\n${result.stdout}${result.stderr}`);
  }
}

/** Every regular file under dir, sorted, relative to dir. */
export async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)))
    .sort();
}

/**
 * The cache key of a client's build: the content of every input (proto/, the client's sources, this file and toolchains.ts, which hold the build commands) and the
 * identity (path, size, mtime) of every tool and library it builds with, so a package
 * upgrade also rebuilds.
 */
async function buildKey(name: ClientName, tools: readonly string[]): Promise<string> {
  const hash = createHash("sha256").update(`${name}\n`);
  const dirs = [protoRoot, join(here, name)];
  for (const dir of dirs) {
    for (const file of await listFiles(dir)) {
      hash.update(`${relative(repoRoot, join(dir, file))}\n`).update(await readFile(join(dir, file)));
    }
  }
  hash.update(await readFile(fileURLToPath(import.meta.url)));
  hash.update(await readFile(join(here, "toolchains.ts")));
  for (const tool of tools) {
    // Resolved, so the same tool reached through another PATH entry or symlink keeps the key.
    const resolved = await realpath(tool).catch(() => tool);
    const info = await stat(resolved).catch(() => undefined);
    hash.update(`${resolved} ${info?.size ?? "-"} ${info?.mtimeMs ?? "-"}\n`);
  }
  return hash.digest("hex").slice(0, 16);
}

/** What a client run calls: host:port of each gateway, the traceparent its traced call sends, and the credentials of the keyed and secured ones. */
export interface ClientTargets {
  /** A Sluice serving model "demo". */
  readonly addr: string;
  /** A Sluice whose "demo" streams slowly (the deadline check). */
  readonly slowAddr: string;
  /** A Sluice whose model "traced" calls a provider over HTTP. */
  readonly tracedAddr: string;
  readonly traceparent: string;
  /** A Sluice with one tenant, whose key is `apiKey` and who may call "demo" only; it also serves "other". */
  readonly keyedAddr: string;
  readonly apiKey: string;
  /**
   * A Sluice over TLS (its certificate, for 127.0.0.1, is `caFile`) that asks for client
   * certificates and has three tenants, each allowed "demo" only (it also serves "other"):
   * one named by a JWT's `tenant` claim, one by the URI SAN of a client certificate signed by
   * its client CA, one by a signing key for signed requests.
   */
  readonly secureAddr: string;
  readonly caFile: string;
  /** A client certificate (PEM) and its PKCS#8 key, signed by the gateway's client CA. */
  readonly clientCert: string;
  readonly clientKey: string;
  /** The same kind of certificate with the same names, signed by another CA. */
  readonly foreignCert: string;
  readonly foreignKey: string;
  /** A valid JWT for the JWT tenant, and one that expired an hour ago. */
  readonly jwt: string;
  readonly expiredJwt: string;
  /** The signing key (id and secret) of the signed-request tenant. */
  readonly signingKeyId: string;
  readonly signingSecret: string;
}

/** Flag names (kebab-case) of the client command line, in order, and the target each takes its value from. */
const targetFlags: ReadonlyArray<readonly [string, keyof ClientTargets]> = [
  ["addr", "addr"],
  ["slow-addr", "slowAddr"],
  ["traced-addr", "tracedAddr"],
  ["traceparent", "traceparent"],
  ["keyed-addr", "keyedAddr"],
  ["api-key", "apiKey"],
  ["secure-addr", "secureAddr"],
  ["ca-file", "caFile"],
  ["client-cert", "clientCert"],
  ["client-key", "clientKey"],
  ["foreign-cert", "foreignCert"],
  ["foreign-key", "foreignKey"],
  ["jwt", "jwt"],
  ["expired-jwt", "expiredJwt"],
  ["signing-key-id", "signingKeyId"],
  ["signing-secret", "signingSecret"],
];

/** The command-line flags for `targets`: `-name value` (Go's flag package) or `--name value`. */
const flagArgs = (targets: ClientTargets, dash: "-" | "--"): string[] =>
  targetFlags.flatMap(([flag, key]) => [`${dash}${flag}`, targets[key]]);

export interface BuiltClient {
  readonly name: ClientName;
  /** The command that runs the client against the gateways of `targets`. */
  command(targets: ClientTargets): { file: string; args: string[] };
  /** False when an earlier build with the same key was reused. */
  readonly built: boolean;
  readonly ms: number;
  readonly dir: string;
}

interface Recipe {
  /** Tools and libraries whose identity is part of the cache key. */
  tools(): Promise<string[]>;
  /** Generates and builds into `out` (a fresh directory). */
  build(out: string): Promise<void>;
  command(dir: string, targets: ClientTargets): { file: string; args: string[] };
}

const protocArgs = (...includes: string[]): string[] => includes.map((dir) => `-I${dir}`);
const sluiceProtoPaths = (): string[] => [...sluiceProtos, errorDetailsProto].map((p) => join(protoRoot, p));

/** GOPATH import paths of the generated Go packages (M flags override the protos' go_package: this client builds standalone). */
const goImport = { sluice: "sluiceclient/gen/sluicev1", rpc: "sluiceclient/gen/googlerpc" };
const goMappings = [
  ...sluiceProtos.map((p) => `M${p}=${goImport.sluice};sluicev1`),
  `M${errorDetailsProto}=${goImport.rpc};googlerpc`,
].join(",");

const recipes: Record<ClientName, Recipe> = {
  go: {
    async tools() {
      return [await which("go"), await which("protoc"), await which("protoc-gen-go"), await which("protoc-gen-go-grpc")]
        .filter((t): t is string => t !== undefined)
        .concat([`${gocode}/src/google.golang.org/grpc/version.go`]);
    },
    async build(out) {
      const gopath = join(out, "gopath");
      const src = join(gopath, "src");
      await mkdir(src, { recursive: true });
      await step("protoc", [
        ...protocArgs(protoRoot),
        `--go_out=${src}`,
        `--go_opt=${goMappings}`,
        `--go-grpc_out=${src}`,
        `--go-grpc_opt=${goMappings}`,
        ...sluiceProtoPaths(),
      ]);
      const cmd = join(src, "sluiceclient/cmd/sluice-go-client");
      await cp(join(here, "go"), cmd, { recursive: true });
      // Debian's Go 1.19 has no toolchain download and no module proxy here: GOPATH mode
      // over the Debian-packaged sources in /usr/share/gocode. Without a C compiler, cgo
      // must be off (Go 1.19 does not turn it off by itself).
      const cgo = (await which("gcc")) ?? (await which("cc"));
      await step("go", ["build", "-o", join(out, "sluice-go-client"), "sluiceclient/cmd/sluice-go-client"], {
        cwd: out,
        env: {
          ...process.env,
          GO111MODULE: "off",
          GOPATH: [gopath, gocode].join(delimiter),
          GOPROXY: "off",
          GOFLAGS: "",
          // Shared across keys: a rebuild after a proto change reuses the compiled grpc-go.
          GOCACHE: join(buildRoot, "go-cache"),
          CGO_ENABLED: cgo ? "1" : "0",
        },
      });
    },
    command(dir, targets) {
      return { file: join(dir, "sluice-go-client"), args: flagArgs(targets, "-") };
    },
  },

  java: {
    async tools() {
      const tools = [await which("javac"), await which("java"), await which("protoc"), "/usr/bin/grpc_java_plugin"];
      return tools.filter((t): t is string => t !== undefined).concat(javaRunJars.map(jar));
    },
    async build(out) {
      const gen = join(out, "gen");
      const classes = join(out, "classes");
      await mkdir(gen, { recursive: true });
      await mkdir(classes, { recursive: true });
      await step("protoc", [
        ...protocArgs(protoRoot),
        "--plugin=protoc-gen-grpc-java=/usr/bin/grpc_java_plugin",
        `--java_out=${gen}`,
        `--grpc-java_out=${gen}`,
        ...sluiceProtoPaths(),
        join(protoRoot, statusProto),
      ]);
      const sources = [
        ...(await listFiles(gen)).filter((f) => f.endsWith(".java")).map((f) => join(gen, f)),
        ...(await listFiles(join(here, "java"))).filter((f) => f.endsWith(".java")).map((f) => join(here, "java", f)),
      ];
      // The run classpath: the TLS checks build a Netty channel with its own SslContext.
      await step("javac", ["-nowarn", "-encoding", "UTF-8", "-d", classes, "-cp", classpath(javaRunJars), ...sources]);
    },
    command(dir, targets) {
      return {
        file: "java",
        args: [
          "-cp",
          [join(dir, "classes"), classpath(javaRunJars)].join(delimiter),
          "SluiceJavaClient",
          ...flagArgs(targets, "--"),
        ],
      };
    },
  },

  python: {
    async tools() {
      const tools = [await which("protoc"), "/usr/bin/grpc_python_plugin", debianPython];
      return tools.filter((t): t is string => t !== undefined);
    },
    async build(out) {
      const gen = join(out, "gen");
      await mkdir(gen, { recursive: true });
      await step("protoc", [
        ...protocArgs(protoRoot),
        "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin",
        `--python_out=${gen}`,
        `--grpc_python_out=${gen}`,
        ...sluiceProtoPaths(),
        join(protoRoot, statusProto),
      ]);
    },
    command(dir, targets) {
      return {
        file: debianPython,
        args: [join(here, "python", "sluice_python_client.py"), "--gen", join(dir, "gen"), ...flagArgs(targets, "--")],
      };
    },
  },
};

/**
 * Generates and builds one client, or reuses the build in .build/<name>-<key> when nothing
 * it depends on changed. A build goes to a temporary directory renamed into place when
 * complete, so an interrupted build is never mistaken for a finished one.
 */
export async function buildClient(name: ClientName): Promise<BuiltClient> {
  const started = performance.now();
  const recipe = recipes[name];
  const key = await buildKey(name, await recipe.tools());
  const dir = join(buildRoot, `${name}-${key}`);
  const done = join(dir, "BUILD-COMPLETE");
  let built = false;
  if (!(await exists(done))) {
    built = true;
    const tmp = join(buildRoot, `tmp-${name}-${key}-${process.pid}-${Date.now()}`);
    await mkdir(tmp, { recursive: true });
    try {
      await recipe.build(tmp);
      await writeFile(join(tmp, "BUILD-COMPLETE"), `${key}\n`);
      await rm(dir, { recursive: true, force: true });
      await rename(tmp, dir);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
    // Older builds of this client are dead weight once a newer one is in place.
    for (const entry of await readdir(buildRoot)) {
      if (entry.startsWith(`${name}-`) && entry !== `${name}-${key}` && entry !== "go-cache") {
        await rm(join(buildRoot, entry), { recursive: true, force: true });
      }
    }
  }
  return {
    name,
    built,
    dir,
    ms: performance.now() - started,
    command: (targets) => recipe.command(dir, targets),
  };
}
