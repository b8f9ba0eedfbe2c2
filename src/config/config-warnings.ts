import type { SluiceConfig } from "./schema.js";

/** Hosts that never answer without a key: a provider pointed at one without `apiKey` fails every call. */
const keyedHosts = new Set(["api.openai.com", "api.anthropic.com"]);

/**
 * Settings that are valid but almost certainly a mistake, said once at startup (main.ts
 * logs each at warn) rather than discovered call by call: every call to such a provider
 * would fail with UPSTREAM_AUTH.
 */
export function configWarnings(config: SluiceConfig): string[] {
  const warnings: string[] = [];
  for (const [name, provider] of Object.entries(config.providers)) {
    if (provider.type === "demo") continue;
    if (provider.apiKey !== undefined || provider.apiKeys !== undefined || provider.apiKeyFile !== undefined) continue;
    const host = new URL(provider.baseUrl).hostname;
    if (keyedHosts.has(host)) {
      warnings.push(`providers.${name}: no apiKey for ${host}: every call to it will fail (UPSTREAM_AUTH)`);
    }
  }
  const aliasesServed = new Set(Object.values(config.models).flatMap((model) => model.deployments.map((d) => d.provider)));
  for (const name of Object.keys(config.providers)) {
    if (!aliasesServed.has(name)) warnings.push(`providers.${name}: no model alias uses it`);
  }
  return warnings;
}
