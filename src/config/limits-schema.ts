import { z } from "zod";
import { positiveMs } from "./provider-schema.js";

/**
 * Rate limits (`tenants.*.limits`, `tenants.*.modelLimits.*`, `tenants.*.apiKeys[].limits`):
 * each counted over a sliding minute (any 60 s holds at most the limit), and concurrency as
 * calls in progress. Unset: no such limit.
 */
export const rateLimitsSchema = z
  .object({
    /** Calls admitted in any 60 s. */
    requestsPerMinute: z.number().int().positive().optional(),
    /** Tokens (prompt estimate + max output at admission, the provider's usage once known) in any 60 s. */
    tokensPerMinute: z.number().int().positive().optional(),
    /** Calls and streams in progress at once. */
    concurrentRequests: z.number().int().positive().optional(),
  })
  .strict();

/**
 * Spending limits per UTC day and calendar month (`tenants.*.budget`): reserved at admission
 * (the estimate at the highest price among the alias's deployments), settled at the end with
 * what the call cost, so concurrent calls cannot overspend. Unset: no such limit.
 */
export const budgetSchema = z
  .object({
    usdPerDay: z.number().positive().optional(),
    usdPerMonth: z.number().positive().optional(),
    tokensPerDay: z.number().int().positive().optional(),
    tokensPerMonth: z.number().int().positive().optional(),
  })
  .strict();

const redisUrl = z.string().refine((value) => URL.canParse(value) && /^rediss?:$/.test(new URL(value).protocol), {
  message: "expected a redis:// or rediss:// URL",
});

/**
 * Where limits, budgets, reservations, the usage ledger and signed-request nonces live:
 * in this process (absent `redis`: one replica), or in Redis shared by every replica.
 */
export const stateSchema = z
  .object({
    redis: z
      .object({
        url: redisUrl,
        /** Prefix of every key Sluice writes (several gateways may share one Redis). */
        keyPrefix: z.string().max(64).default("sluice:"),
        /** A state operation that takes longer fails (and the fail mode decides). */
        timeoutMs: positiveMs.default(250),
        /**
         * Redis unreachable: `open` admits calls without limits or budgets (logged, counted,
         * health degraded); `closed` refuses them with UNAVAILABLE and a RetryInfo.
         */
        failMode: z.enum(["open", "closed"]).default("open"),
      })
      .strict()
      .optional(),
    /**
     * How long a concurrency slot or budget reservation outlives its replica: a call in
     * progress renews its own every third of this, so a crashed replica's lapse this long after.
     */
    leaseMs: z.number().int().min(1_000).max(600_000).default(30_000),
  })
  .strict();

/** How admission estimates a call (`limits`). */
export const admissionSchema = z
  .object({
    /** Share of a model's `contextWindow` kept free: prompt estimate + max output must fit in the rest. */
    contextMargin: z.number().min(0).max(0.9).default(0.1),
    /** Output tokens assumed for a call that sets no maximum (nor its deployment): reserved, then settled. */
    defaultMaxOutputTokens: z.number().int().positive().default(4_096),
  })
  .strict();

export type RateLimitsConfig = z.output<typeof rateLimitsSchema>;
export type BudgetConfig = z.output<typeof budgetSchema>;
export type StateConfig = z.output<typeof stateSchema>;
export type AdmissionConfig = z.output<typeof admissionSchema>;
