import { describe, expect, it } from "vitest";
import { parseConfig } from "./load-config.js";

/** The message parseConfig throws for one provider block, or undefined when it is valid. */
function problem(provider: Record<string, unknown>, env: Record<string, string> = {}): string | undefined {
  try {
    parseConfig({ providers: { p: provider }, models: {} }, env);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

describe("provider key settings", () => {
  it("apiKey, apiKeys (with ${ENV}) or apiKeyFile, on openai and anthropic; keySelection defaults to failover", () => {
    const config = parseConfig(
      {
        providers: {
          one: { type: "openai", apiKey: "${K1}" },
          many: { type: "anthropic", apiKeys: ["${K1}", "${K2}"], keySelection: "round-robin" },
          file: { type: "openai", apiKeyFile: "/var/run/secrets/openai/keys" },
        },
        models: {},
      },
      { K1: "sk-one", K2: "sk-two" },
    );
    expect(config.providers["one"]).toMatchObject({ apiKey: "sk-one", keySelection: "failover" });
    expect(config.providers["many"]).toMatchObject({ apiKeys: ["sk-one", "sk-two"], keySelection: "round-robin" });
    expect(config.providers["file"]).toMatchObject({ apiKeyFile: "/var/run/secrets/openai/keys" });
  });

  it("at most one of apiKey, apiKeys, apiKeyFile", () => {
    expect(problem({ type: "openai", apiKey: "sk-a", apiKeys: ["sk-b"] })).toContain(
      "providers.p.apiKeys: set one of apiKey, apiKeys, apiKeyFile, not apiKey and apiKeys",
    );
    expect(problem({ type: "anthropic", apiKeys: ["sk-b"], apiKeyFile: "/k" })).toContain(
      "providers.p.apiKeyFile: set one of apiKey, apiKeys, apiKeyFile, not apiKeys and apiKeyFile",
    );
  });

  it("apiKeys: at least one, each a header-safe key; the message never repeats the key", () => {
    expect(problem({ type: "openai", apiKeys: [] })).toContain("providers.p.apiKeys");
    const message = problem({ type: "openai", apiKeys: ["sk-ok", "${PASTED}"] }, { PASTED: "sk-pasted-secret\n" });
    expect(message).toContain("providers.p.apiKeys.1: a key is visible ASCII characters without spaces");
    expect(message).not.toContain("sk-pasted-secret");
  });

  it("the demo provider has no keys; keySelection is one of two", () => {
    expect(problem({ type: "demo", apiKey: "sk-a" })).toContain("apiKey");
    expect(problem({ type: "openai", keySelection: "random" })).toContain("providers.p.keySelection");
  });
});
