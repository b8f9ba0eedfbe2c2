import { describe, expect, it } from "vitest";
import { configWarnings } from "./config-warnings.js";
import { parseConfig } from "./load-config.js";

const parse = (providers: Record<string, unknown>, models: Record<string, unknown>) => parseConfig({ providers, models }, {});

describe("config warnings", () => {
  it("names a provider pointed at OpenAI or Anthropic without a key, and one no alias uses", () => {
    const config = parse(
      {
        openai: { type: "openai" },
        claude: { type: "anthropic" },
        keyed: { type: "openai", apiKey: "k" },
        several: { type: "openai", apiKeys: ["k1", "k2"] },
        fromFile: { type: "anthropic", apiKeyFile: "/run/secrets/keys" },
        local: { type: "openai", baseUrl: "http://127.0.0.1:8000/v1" },
        spare: { type: "demo" },
      },
      {
        a: { deployments: [{ provider: "openai", model: "m" }] },
        b: {
          deployments: [
            { provider: "claude", model: "m" },
            { provider: "keyed", model: "m" },
          ],
        },
        c: { deployments: [{ provider: "local", model: "m" }] },
        d: {
          deployments: [
            { provider: "several", model: "m" },
            { provider: "fromFile", model: "m" },
          ],
        },
      },
    );
    expect(configWarnings(config)).toEqual([
      "providers.openai: no apiKey for api.openai.com: every call to it will fail (UPSTREAM_AUTH)",
      "providers.claude: no apiKey for api.anthropic.com: every call to it will fail (UPSTREAM_AUTH)",
      "providers.spare: no model alias uses it",
    ]);
  });

  it("says nothing about a sound configuration", () => {
    const config = parse(
      { local: { type: "openai", baseUrl: "http://127.0.0.1:8000/v1" } },
      {
        a: { deployments: [{ provider: "local", model: "m" }] },
      },
    );
    expect(configWarnings(config)).toEqual([]);
  });
});
