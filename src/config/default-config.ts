type Env = Readonly<Record<string, string | undefined>>;

/**
 * The embedded default: what `npm start` serves with no configuration file. It needs no
 * keys and no network — the demo provider answers model `demo`. When OPENAI_API_KEY or
 * ANTHROPIC_API_KEY is set, the real providers and a few of their models are added.
 * SLUICE_LISTEN overrides the address.
 */
export function defaultConfigDocument(env: Env): Record<string, unknown> {
  const providers: Record<string, unknown> = { demo: { type: "demo" } };
  const models: Record<string, unknown> = {
    demo: {
      deployments: [{ provider: "demo", model: "sluice-demo-1" }],
      contextWindow: 32_768,
      capabilities: { streaming: true, tools: false, vision: false, structuredOutput: false, reasoning: false },
    },
  };
  if (env["OPENAI_API_KEY"]) {
    providers["openai"] = {
      type: "openai",
      baseUrl: env["OPENAI_BASE_URL"] || "https://api.openai.com/v1",
      apiKey: "${OPENAI_API_KEY}",
    };
    const openaiModels: Array<[string, number]> = [
      ["gpt-4o-mini", 128_000],
      ["gpt-4o", 128_000],
      ["gpt-4.1", 1_047_576],
      ["gpt-4.1-mini", 1_047_576],
    ];
    for (const [model, contextWindow] of openaiModels) {
      models[model] = {
        deployments: [{ provider: "openai", model }],
        contextWindow,
        capabilities: { streaming: true, tools: true, vision: true, structuredOutput: true, reasoning: false },
      };
    }
  }
  if (env["ANTHROPIC_API_KEY"]) {
    providers["anthropic"] = {
      type: "anthropic",
      baseUrl: env["ANTHROPIC_BASE_URL"] || "https://api.anthropic.com",
      apiKey: "${ANTHROPIC_API_KEY}",
    };
    const anthropicModels = ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"];
    for (const model of anthropicModels) {
      models[model] = {
        deployments: [{ provider: "anthropic", model, maxOutputTokens: 8192 }],
        contextWindow: 200_000,
        capabilities: { streaming: true, tools: true, vision: true, structuredOutput: false, reasoning: true },
      };
    }
  }
  return {
    listen: env["SLUICE_LISTEN"] || "127.0.0.1:8080",
    providers,
    models,
  };
}
