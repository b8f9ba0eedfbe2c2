import { startFakeUpstream, type FakeUpstream } from "./fake-upstream.js";
import { startSluice, type StartedSluice } from "./start-sluice.js";

/** The keys Sluice is configured with; shaped like real ones so redaction rules apply to them. */
export const openaiTestKey = "sk-sluice-test-openai-5f2c9a7b1e4d";
export const anthropicTestKey = "sk-ant-sluice-test-3d8e6b0a4c91";

/** Configured provider names (distinct from the types, so messages naming "the provider" are checked). */
export const openaiProviderName = "oai";
export const anthropicProviderName = "claude";

/** Model aliases callers use, and the upstream model ids they resolve to. */
export const openaiAlias = "gpt";
export const openaiUpstreamModel = "gpt-4o";
export const anthropicAlias = "sonnet";
export const anthropicUpstreamModel = "claude-sonnet-4-5";
export const anthropicDefaultMaxTokens = 1024;

export interface ProviderGateway {
  readonly sluice: StartedSluice;
  /** A fake OpenAI origin: Sluice's baseUrl is `${origin}/v1`. */
  readonly openai: FakeUpstream;
  /** A fake Anthropic origin: Sluice's baseUrl is the origin (the adapter adds /v1/messages). */
  readonly anthropic: FakeUpstream;
  close(): Promise<void>;
}

/**
 * One fake upstream per provider type on loopback and one real Sluice in front of both,
 * configured from a YAML-shaped document as a user would write it (keys through `${ENV}`).
 * Provider timeouts stay at their production defaults (minutes), so only a caller's cancel
 * or deadline can close a stalled upstream request within a test.
 */
/** One attempt per call: the caller sees each scripted upstream answer as it is. */
const noRetry = { maxAttempts: 1 };

export async function startProviderGateway(): Promise<ProviderGateway> {
  const openai = await startFakeUpstream();
  const anthropic = await startFakeUpstream();
  let sluice: StartedSluice;
  try {
    sluice = await startSluice(
      {
        providers: {
          [openaiProviderName]: { type: "openai", baseUrl: `${openai.origin}/v1`, apiKey: "${TEST_OPENAI_KEY}" },
          [anthropicProviderName]: { type: "anthropic", baseUrl: anthropic.origin, apiKey: "${TEST_ANTHROPIC_KEY}" },
        },
        models: {
          [openaiAlias]: { deployments: [{ provider: openaiProviderName, model: openaiUpstreamModel }], retry: noRetry },
          [anthropicAlias]: {
            deployments: [
              { provider: anthropicProviderName, model: anthropicUpstreamModel, maxOutputTokens: anthropicDefaultMaxTokens },
            ],
            retry: noRetry,
          },
        },
        // These suites check how each upstream answer is translated, one call at a time:
        // retries and breakers (tested in resilience*.test.ts) would change what they see.
        resilience: { breaker: { volumeThreshold: 1_000_000 } },
      },
      { env: { TEST_OPENAI_KEY: openaiTestKey, TEST_ANTHROPIC_KEY: anthropicTestKey } },
    );
  } catch (err) {
    await Promise.all([openai.close(), anthropic.close()]);
    throw err;
  }
  return {
    sluice,
    openai,
    anthropic,
    async close() {
      await sluice.close();
      await Promise.all([openai.close(), anthropic.close()]);
    },
  };
}
