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

const openaiProviderSchema = z
  .object({
    type: z.literal("openai"),
    /** Up to and including the version segment, e.g. https://api.openai.com/v1. */
    baseUrl: z.url({ protocol: /^https?$/ }).default("https://api.openai.com/v1"),
    /** Sent as `Authorization: Bearer …` (or in `apiKeyHeader`). Optional for local servers. */
    apiKey: z.string().min(1).optional(),
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
  .strict();

const anthropicProviderSchema = z
  .object({
    type: z.literal("anthropic"),
    baseUrl: z.url({ protocol: /^https?$/ }).default("https://api.anthropic.com"),
    apiKey: z.string().min(1).optional(),
    /** `anthropic-version` header. */
    version: z.string().min(1).default("2023-06-01"),
    /** `anthropic-beta` features, joined with commas. */
    beta: z.array(z.string().min(1)).default([]),
    headers: headersSchema.default({}),
    timeouts: timeoutsSchema.default({ connectMs: 10_000, headersMs: 120_000, bodyIdleMs: 120_000 }),
    connections: z.number().int().positive().default(128),
  })
  .strict();

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
