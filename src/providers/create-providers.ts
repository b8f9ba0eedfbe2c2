import type { ProviderConfig, SluiceConfig } from "../config/schema.js";
import type { Provider } from "./provider.js";
import { createDemoProvider } from "./demo/demo-provider.js";
import { createAnthropicProvider } from "./anthropic/anthropic-provider.js";
import { createOpenAIProvider } from "./openai/openai-provider.js";

/** Builds one adapter per configured provider, by type. */
export function createProvider(name: string, config: ProviderConfig): Provider {
  switch (config.type) {
    case "demo":
      return createDemoProvider(name, config);
    case "anthropic":
      return createAnthropicProvider(name, config);
    case "openai":
      return createOpenAIProvider(name, config, { maxTokensField: config.maxTokensField });
  }
}

/** Every configured provider, keyed by its configured name. */
export function createProviders(config: SluiceConfig): Map<string, Provider> {
  const providers = new Map<string, Provider>();
  for (const [name, providerConfig] of Object.entries(config.providers)) {
    providers.set(name, createProvider(name, providerConfig));
  }
  return providers;
}
