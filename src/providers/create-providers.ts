import type { ProviderConfig, SluiceConfig } from "../config/schema.js";
import type { Logger } from "../telemetry/logger.js";
import type { Provider } from "./provider.js";
import { createDemoProvider } from "./demo/demo-provider.js";
import { createAnthropicProvider } from "./anthropic/anthropic-provider.js";
import { createOpenAIProvider } from "./openai/openai-provider.js";

export interface ProviderDeps {
  /** Key file reloads, unusable key files and refused keys are logged here (never a key). */
  readonly logger?: Logger | undefined;
}

/** Builds one adapter per configured provider, by type. */
export function createProvider(name: string, config: ProviderConfig, deps: ProviderDeps = {}): Provider {
  const keys = { logger: deps.logger };
  switch (config.type) {
    case "demo":
      return createDemoProvider(name, config);
    case "anthropic":
      return createAnthropicProvider(name, config, keys);
    case "openai":
      return createOpenAIProvider(name, config, { maxTokensField: config.maxTokensField, keys });
  }
}

/**
 * Every configured provider, keyed by its configured name. A key file that cannot be read
 * is a ConfigError (naming the path); the providers built before it are closed.
 */
export function createProviders(config: SluiceConfig, deps: ProviderDeps = {}): Map<string, Provider> {
  const providers = new Map<string, Provider>();
  try {
    for (const [name, providerConfig] of Object.entries(config.providers)) {
      providers.set(name, createProvider(name, providerConfig, deps));
    }
  } catch (err) {
    for (const provider of providers.values()) void provider.close();
    throw err;
  }
  return providers;
}
