import { z } from "zod";

/** The `providers` section of the configuration: one schema per provider type. */

/** A duration in whole milliseconds, > 0. */
export const positiveMs = z.number().int().positive();

/** Per-provider upstream timeouts (undici). */
const timeoutsSchema = z
  .object({
    /** TCP + TLS connect. */
    connectMs: positiveMs.default(10_000),
    /** From request sent to response headers (time to first byte). */
    headersMs: positiveMs.default(120_000),
    /** Longest gap between two body chunks (an idle stream). */
    bodyIdleMs: positiveMs.default(120_000),
  })
  .strict();

const headersSchema = z.record(z.string().min(1), z.string());

/**
 * A key as it goes into a header: visible ASCII, no spaces (a pasted newline or space would
 * make every request fail). The message never repeats the value: it is a secret.
 */
const keyText = z.string().regex(/^[\x21-\x7e]+$/, "a key is visible ASCII characters without spaces");

/**
 * Where a provider's keys come from, shared by the keyed provider types: one literal key
 * (`apiKey`, as ever), several (`apiKeys`), or a file of keys re-read when it changes
 * (`apiKeyFile`, a Kubernetes secret mount). At most one of the three.
 */
const keyFields = {
  /** One key. Optional for local servers. */
  apiKey: z.string().min(1).optional(),
  /** Several keys (`${ENV}` each), used by `keySelection`; a refused or rate-limited key is benched. */
  apiKeys: z.array(keyText).min(1).optional(),
  /** A file of keys, one a line (blank lines and `#` comments ignored), re-read when it changes. */
  apiKeyFile: z.string().min(1).optional(),
  /** `failover`: the first healthy key serves every call; `round-robin`: calls rotate over the healthy keys. */
  keySelection: z.enum(["failover", "round-robin"]).default("failover"),
};

const keySources = ["apiKey", "apiKeys", "apiKeyFile"] as const;

/** At most one of apiKey / apiKeys / apiKeyFile: which one wins would otherwise be a guess. */
function oneKeySource(config: Partial<Record<(typeof keySources)[number], unknown>>, ctx: z.RefinementCtx): void {
  const set = keySources.filter((field) => config[field] !== undefined);
  if (set.length <= 1) return;
  ctx.addIssue({
    code: "custom",
    path: [set[1]!],
    message: `set one of apiKey, apiKeys, apiKeyFile, not ${set.join(" and ")}`,
  });
}

const openaiProviderSchema = z
  .object({
    type: z.literal("openai"),
    /** Up to and including the version segment, e.g. https://api.openai.com/v1. */
    baseUrl: z.url({ protocol: /^https?$/ }).default("https://api.openai.com/v1"),
    /** Keys, sent as `Authorization: Bearer …` (or in `apiKeyHeader`). */
    ...keyFields,
    /** Header carrying the key instead of Authorization (Azure OpenAI: `api-key`). */
    apiKeyHeader: z.string().min(1).optional(),
    /** Query parameters added to every request (Azure OpenAI: `api-version`). */
    query: z.record(z.string().min(1), z.string()).default({}),
    /** Extra headers sent upstream (e.g. OpenAI-Organization). */
    headers: headersSchema.default({}),
    /**
     * The field carrying the output limit. OpenAI's reasoning models reject `max_tokens`;
     * some compatible servers know only `max_tokens` and ignore the newer field.
     */
    maxTokensField: z.enum(["max_completion_tokens", "max_tokens"]).default("max_completion_tokens"),
    timeouts: timeoutsSchema.default({ connectMs: 10_000, headersMs: 120_000, bodyIdleMs: 120_000 }),
    /** Max open connections to the origin. */
    connections: z.number().int().positive().default(128),
  })
  .strict()
  .superRefine(oneKeySource);

const anthropicProviderSchema = z
  .object({
    type: z.literal("anthropic"),
    baseUrl: z.url({ protocol: /^https?$/ }).default("https://api.anthropic.com"),
    /** Keys, sent as `x-api-key`. */
    ...keyFields,
    /** `anthropic-version` header. */
    version: z.string().min(1).default("2023-06-01"),
    /** `anthropic-beta` features, joined with commas. */
    beta: z.array(z.string().min(1)).default([]),
    headers: headersSchema.default({}),
    timeouts: timeoutsSchema.default({ connectMs: 10_000, headersMs: 120_000, bodyIdleMs: 120_000 }),
    connections: z.number().int().positive().default(128),
  })
  .strict()
  .superRefine(oneKeySource);

const demoProviderSchema = z
  .object({
    type: z.literal("demo"),
    /** Pause between streamed words. */
    wordDelayMs: z.number().int().min(0).default(20),
    /** Pause before a unary answer and before a stream's first word (simulated model latency). */
    responseDelayMs: z.number().int().min(0).default(0),
  })
  .strict();

export const providerSchema = z.discriminatedUnion("type", [openaiProviderSchema, anthropicProviderSchema, demoProviderSchema]);

/** Per-attempt time limits beyond the provider's socket timeouts; all obey the caller's deadline too. */

export type ProviderConfig = z.output<typeof providerSchema>;
export type OpenAIProviderConfig = z.output<typeof openaiProviderSchema>;
export type AnthropicProviderConfig = z.output<typeof anthropicProviderSchema>;
export type DemoProviderConfig = z.output<typeof demoProviderSchema>;
export type ProviderTimeouts = z.output<typeof timeoutsSchema>;
/** The key settings every keyed provider type shares. */
export type ProviderKeySettings = Pick<OpenAIProviderConfig, "apiKey" | "apiKeys" | "apiKeyFile" | "keySelection">;
