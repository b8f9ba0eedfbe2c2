import { describe, expect, it } from "vitest";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, interpolateEnv, loadConfig, parseConfigText } from "./load-config.js";

const documented = `
listen: 127.0.0.1:8080
providers:
  openai:    { type: openai,    baseUrl: https://api.openai.com/v1, apiKey: \${OPENAI_API_KEY} }
  anthropic: { type: anthropic, baseUrl: https://api.anthropic.com, apiKey: \${ANTHROPIC_API_KEY} }
  local:     { type: openai,    baseUrl: http://127.0.0.1:8000/v1 }   # vLLM, Ollama…
  demo:      { type: demo }
models:
  fast: { deployments: [ { provider: openai, model: gpt-4o-mini } ] }
`;

function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error("expected a ConfigError");
}

describe("configuration", () => {
  it("loads the documented example with secrets from the environment", () => {
    const config = parseConfigText(documented, { OPENAI_API_KEY: "sk-test-1", ANTHROPIC_API_KEY: "sk-ant-2" });
    expect(config.providers["openai"]).toMatchObject({ type: "openai", apiKey: "sk-test-1" });
    expect(config.providers["anthropic"]).toMatchObject({ type: "anthropic", apiKey: "sk-ant-2", version: "2023-06-01" });
    expect(config.providers["local"]).toMatchObject({ type: "openai", baseUrl: "http://127.0.0.1:8000/v1" });
    expect(config.models["fast"]?.deployments[0]).toMatchObject({ provider: "openai", model: "gpt-4o-mini" });
    expect(config.server.maxRequestBytes).toBe(4 * 1024 * 1024);
  });

  it("names the unset environment variable and the field that needs it", () => {
    const message = messageOf(() => parseConfigText(documented, { ANTHROPIC_API_KEY: "k" }, "sluice.yaml"));
    expect(message).toContain("sluice.yaml");
    expect(message).toContain("providers.openai.apiKey");
    expect(message).toContain("OPENAI_API_KEY");
  });

  it("supports ${NAME:-default} and never re-parses substituted text as YAML", () => {
    expect(interpolateEnv({ a: "${X:-fallback}", b: ["${Y}"] }, { Y: "a: b\n- c" })).toEqual({
      a: "fallback",
      b: ["a: b\n- c"],
    });
  });

  it("reports every bad field with its path", () => {
    const message = messageOf(() =>
      parseConfigText(
        `
listen: nowhere
providers:
  p: { type: openai, baseUrl: "not a url" }
  q: { type: carrier-pigeon }
models:
  m: { deployments: [ { provider: missing, model: x } ] }
  n: { deployments: [] }
`,
        {},
      ),
    );
    expect(message).toContain("listen");
    expect(message).toContain("providers.p.baseUrl");
    expect(message).toContain("providers.q.type");
    expect(message).toContain("models.n.deployments");
  });

  it("rejects a deployment naming an unknown provider", () => {
    const message = messageOf(() =>
      parseConfigText(
        `providers: { demo: { type: demo } }\nmodels: { m: { deployments: [ { provider: nope, model: x } ] } }`,
        {},
      ),
    );
    expect(message).toContain("models.m.deployments.0.provider");
    expect(message).toContain('unknown provider "nope"');
  });

  it("names out-of-range resilience settings: a hedge percentile, a concurrency limit", () => {
    const message = messageOf(() =>
      parseConfigText(
        `providers: { demo: { type: demo } }
models:
  m:
    deployments: [ { provider: demo, model: x, maxInFlight: 0 } ]
    hedge: { delayMs: 100, percentile: 30 }
`,
        {},
      ),
    );
    expect(message).toContain("models.m.deployments.0.maxInFlight");
    expect(message).toContain("models.m.hedge.percentile");
  });

  it("server limits: explicit defaults whether or not `server` is written, each overridable on its own", () => {
    const defaults = {
      requestBodyTimeoutMs: 30_000,
      writeStallTimeoutMs: 30_000,
      maxConcurrentCalls: 10_000,
      maxHeaderBytes: 16 * 1024,
      http2: { maxConcurrentStreams: 100, maxSessionMemoryMb: 10, keepAlivePingMs: 30_000, keepAlivePingTimeoutMs: 20_000 },
      healthzDetails: false,
    };
    const providers = "providers: { demo: { type: demo } }\nmodels: {}\n";
    expect(parseConfigText(providers, {}).server).toMatchObject(defaults);
    expect(parseConfigText(`${providers}server: { drainTimeoutMs: 5 }`, {}).server).toMatchObject(defaults);
    const tuned = parseConfigText(`${providers}server: { http2: { maxConcurrentStreams: 250 }, healthzDetails: true }`, {});
    expect(tuned.server.http2).toEqual({
      maxConcurrentStreams: 250,
      maxSessionMemoryMb: 10,
      keepAlivePingMs: 30_000,
      keepAlivePingTimeoutMs: 20_000,
    });
    expect(tuned.server.healthzDetails).toBe(true);
  });

  it("names out-of-range server limits", () => {
    const message = messageOf(() =>
      parseConfigText(
        `providers: { demo: { type: demo } }
models: {}
server: { maxConcurrentCalls: 0, maxHeaderBytes: 10, requestBodyTimeoutMs: -1, http2: { maxConcurrentStreams: 0 } }
`,
        {},
      ),
    );
    for (const path of [
      "server.maxConcurrentCalls",
      "server.maxHeaderBytes",
      "server.requestBodyTimeoutMs",
      "server.http2.maxConcurrentStreams",
    ]) {
      expect(message).toContain(path);
    }
  });

  it("rejects unknown keys instead of ignoring a typo", () => {
    const message = messageOf(() => parseConfigText(`providers: { demo: { type: demo, wordDelay: 5 } }\nmodels: {}`, {}));
    expect(message).toContain("providers.demo");
    expect(message).toContain("wordDelay");
  });

  it("with no file serves the demo model, and adds real providers only when their keys are set", async () => {
    const bare = await loadConfig(undefined, {});
    expect(Object.keys(bare.models)).toEqual(["demo"]);
    expect(bare.listen).toBe("127.0.0.1:8080");
    const withKeys = await loadConfig(undefined, { OPENAI_API_KEY: "sk-a", ANTHROPIC_API_KEY: "sk-b" });
    expect(withKeys.providers["openai"]).toMatchObject({ apiKey: "sk-a" });
    expect(withKeys.providers["anthropic"]).toMatchObject({ apiKey: "sk-b" });
    expect(withKeys.models["gpt-4o-mini"]?.deployments[0]?.provider).toBe("openai");
    expect(withKeys.models["claude-sonnet-4-5"]?.deployments[0]).toMatchObject({ provider: "anthropic", maxOutputTokens: 8192 });
  });

  it("reads a file, and names a missing one", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sluice-config-"));
    const file = join(dir, "sluice.yaml");
    await writeFile(
      file,
      "listen: 127.0.0.1:9999\nproviders: { demo: { type: demo } }\nmodels: { demo: { deployments: [ { provider: demo, model: d } ] } }\n",
    );
    expect((await loadConfig(file, {})).listen).toBe("127.0.0.1:9999");
    await expect(loadConfig(join(dir, "absent.yaml"), {})).rejects.toThrow(/absent\.yaml.*ENOENT/);
  });
});
