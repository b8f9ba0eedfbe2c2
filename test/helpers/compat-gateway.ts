import { apiKeyHash } from "../../src/identity/api-keys.js";
import { startFakeUpstream, type FakeUpstream } from "./fake-upstream.js";
import { startSluice, type StartedSluice } from "./start-sluice.js";

/** A Sluice for the compatible-API tests (openai-compat, anthropic-compat) and its fake upstreams. */
export interface CompatGateway {
  readonly openaiUp: FakeUpstream;
  readonly anthropicUp: FakeUpstream;
  readonly gateway: StartedSluice;
  close(): Promise<void>;
}

/**
 * A real Sluice whose upstreams are a fake OpenAI and a fake Anthropic on loopback: models
 * `gpt` (OpenAI), `sonnet` (Anthropic), `slow` (a demo model 5 s late); tenant `main` with
 * `key`, tenant `conc` with `limitedKey` and one concurrent request; SSE heartbeats every 50 ms.
 */
export async function startCompatGateway(key: string, limitedKey: string): Promise<CompatGateway> {
  const openaiUp = await startFakeUpstream();
  const anthropicUp = await startFakeUpstream();
  const gateway = await startSluice(
    {
      providers: {
        oai: { type: "openai", baseUrl: `${openaiUp.origin}/v1`, apiKey: "sk-upstream-test-0123456789" },
        claude: { type: "anthropic", baseUrl: anthropicUp.origin, apiKey: "sk-ant-upstream-test-0123456789" },
        slow: { type: "demo", wordDelayMs: 0, responseDelayMs: 5_000 },
      },
      models: {
        gpt: { deployments: [{ provider: "oai", model: "gpt-4o" }], retry: { maxAttempts: 1 } },
        sonnet: {
          deployments: [{ provider: "claude", model: "claude-sonnet-4-5", maxOutputTokens: 1024 }],
          retry: { maxAttempts: 1 },
        },
        slow: { deployments: [{ provider: "slow", model: "slow-1" }] },
      },
      tenants: {
        main: { apiKeys: [{ sha256: apiKeyHash(key), id: "main" }], models: ["*"] },
        conc: { apiKeys: [{ sha256: apiKeyHash(limitedKey), id: "conc" }], models: ["*"], limits: { concurrentRequests: 1 } },
      },
      resilience: { breaker: { volumeThreshold: 1_000_000 } },
    },
    { server: { sse: { heartbeatMs: 50 } } as never },
  );
  return {
    openaiUp,
    anthropicUp,
    gateway,
    async close() {
      await gateway.close();
      await Promise.all([openaiUp.close(), anthropicUp.close()]);
    },
  };
}
