/**
 * Histogram buckets, in seconds (tokens for token usage). The GenAI semantic conventions'
 * advised boundaries where they exist, stretched to LLM sizes: a long generation or a
 * reasoning model's first token can take minutes, and a bucket list that ends at 10 s
 * would put every slow call in +Inf, where no quantile can be read.
 */
export const buckets = {
  /** gen_ai.server.request.duration's advice (10 ms … 82 s), plus 164 s and 328 s. */
  requestDuration: [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92, 163.84, 327.68],
  /** gen_ai.server.time_to_first_token's advice (1 ms … 10 s), plus 15 s … 2 min for reasoning models. */
  timeToFirstToken: [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 15, 30, 60, 120],
  /** gen_ai.server.time_per_output_token's advice (10 ms … 2.5 s), plus 2.5 ms and 5 ms: fast models stream 200+ tokens/s. */
  timePerOutputToken: [0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5],
  /** gen_ai.client.token.usage's advice: powers of 4 from 1 to 67M tokens. */
  tokenUsage: [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864],
  /**
   * Time the gateway added to a call (its total minus the time an upstream attempt was in
   * flight): 100 µs when all is well; seconds when it waited out a backoff or Retry-After.
   */
  gatewayAdded: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
} as const satisfies Record<string, readonly number[]>;
