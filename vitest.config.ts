import { defineConfig } from "vitest/config";

// Four tiers (docs/development.md): `vitest run --project unit|integration|hardening|interop`; plain `vitest run` runs all four.
export default defineConfig({
  test: {
    // Files run in parallel processes.
    pool: "forks",
    testTimeout: 20_000,
    hookTimeout: 30_000,
    projects: [
      {
        extends: true,
        test: {
          // Pure tests beside the code: no sockets, no servers, no child processes (the setup file
          // makes each fail). Files share one module graph per worker (isolate: false, ~4x faster),
          // so a file undoes what it changes globally (fake timers, spies, env) in afterEach.
          name: "unit",
          include: ["src/**/*.test.ts"],
          setupFiles: ["test/setup/unit-no-io.ts"],
          isolate: false,
        },
      },
      {
        extends: true,
        test: {
          // Real servers on 127.0.0.1 and port 0, fake providers on loopback.
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
        },
      },
      {
        extends: true,
        test: {
          // Attacks on a real server (bounded, loopback, seconds each). --expose-gc
          // lets a file measure memory after a full collection; each file runs in its own
          // process (forks, isolated), so what it measures is its own server and clients.
          name: "hardening",
          include: ["test/hardening/**/*.test.ts"],
          execArgv: ["--expose-gc"],
        },
      },
      {
        extends: true,
        test: {
          // The Go, Java and Python gRPC clients, and examples/ (Go, Java, Python, TypeScript, curl) built and run
          // as their READMEs say, against a real server.
          name: "interop",
          include: ["test/clients/**/*.test.ts"],
        },
      },
    ],
  },
});
