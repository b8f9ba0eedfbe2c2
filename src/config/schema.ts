import { z } from "zod";
import { positiveMs, providerSchema } from "./provider-schema.js";
import { parseCidr } from "./cidr.js";
import { admissionSchema, budgetSchema, rateLimitsSchema, stateSchema } from "./limits-schema.js";
import { cacheSchema, idempotencySchema } from "./cache-schema.js";

/**
 * The configuration file's schema. Validated once at load: a bad file fails
 * fast with the path of the bad field, and nothing per request re-checks it.
 */

const attemptTimeoutsSchema = z
  .object({
    /** From sending the request to the first event (stream) or the answer (unary). */
    firstTokenMs: positiveMs.optional(),
    /** Longest gap between two stream events. */
    idleMs: positiveMs.optional(),
    /** Whole attempt. */
    totalMs: positiveMs.optional(),
  })
  .strict();

/** The price's first spelling (`inputPerMillionTokens`…), still read: renamed, not removed. */
function priceAliases(value: unknown): unknown {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return value;
  const renamed: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) renamed[key.replace(/PerMillionTokens$/, "PerMillion")] = field;
  return renamed;
}

const deploymentSchema = z
  .object({
    /** A key of `providers`. */
    provider: z.string().min(1),
    /** The provider's model id. */
    model: z.string().min(1),
    /** Default output limit when the request sets none (required upstream by Anthropic). */
    maxOutputTokens: z.number().int().positive().optional(),
    /** Share of traffic for weighted strategies; 0 = only as a fail-over. Ramp a new deployment by raising it. */
    weight: z.number().min(0).default(1),
    timeouts: attemptTimeoutsSchema.default({}),
    /**
     * Most attempts in flight on this deployment at once (all aliases naming it count);
     * at the limit it is skipped like an open breaker. Unset: unlimited.
     */
    maxInFlight: z.number().int().positive().optional(),
    /** USD per million tokens: the cost of this deployment's answers (metrics, access log). */
    price: z
      .preprocess(
        priceAliases,
        z
          .object({
            inputPerMillion: z.number().min(0),
            outputPerMillion: z.number().min(0),
            /** Prompt tokens read from the provider's cache, when billed differently (else the input price). */
            cachedInputPerMillion: z.number().min(0).optional(),
          })
          .strict(),
      )
      .optional(),
  })
  .strict();

const retrySchema = z
  .object({
    /** Attempts per deployment, the first included. */
    maxAttempts: z.number().int().min(1).max(10).default(2),
    initialBackoffMs: positiveMs.default(250),
    maxBackoffMs: positiveMs.default(8_000),
    /** Time budget for all attempts and waits of one call (the caller's deadline also applies). */
    totalBudgetMs: positiveMs.default(60_000),
    /** A Retry-After longer than this is not waited for: the call fails over instead. */
    maxRetryAfterMs: positiveMs.default(30_000),
  })
  .strict();

const routeRuleSchema = z
  .object({
    /** Every condition must hold: metadata entries, request headers (names case-insensitive). */
    match: z
      .object({
        metadata: z.record(z.string(), z.string()).optional(),
        headers: z.record(z.string(), z.string()).optional(),
        /** The caller's tenant (a key of `tenants`). */
        tenant: z.string().min(1).optional(),
      })
      .strict(),
    /** Deployments (as "provider/model") that serve matching requests, in this alias. */
    deployments: z.array(z.string().min(1)).min(1),
  })
  .strict();

const capabilitiesSchema = z
  .object({
    streaming: z.boolean().default(true),
    tools: z.boolean().default(true),
    vision: z.boolean().default(false),
    structuredOutput: z.boolean().default(false),
    reasoning: z.boolean().default(false),
  })
  .strict();

const modelSchema = z
  .object({
    deployments: z.array(deploymentSchema).min(1),
    /** Largest prompt + completion in tokens (reported by ListModels). */
    contextWindow: z.number().int().positive().optional(),
    capabilities: capabilitiesSchema.default({
      streaming: true,
      tools: true,
      vision: false,
      structuredOutput: false,
      reasoning: false,
    }),
    /**
     * How deployments are ordered per call: `ordered` (as configured: the first serves,
     * the rest are fail-overs), `weighted`, `round-robin`, `least-latency`, `p2c`, `sticky`.
     */
    strategy: z.enum(["ordered", "weighted", "round-robin", "least-latency", "p2c", "sticky"]).default("ordered"),
    /** `sticky`: the metadata key whose value pins a caller to a deployment (e.g. end_user). */
    stickyKey: z.string().min(1).optional(),
    /** Conditional routes (gray release, A/B): the first matching rule picks the deployments. */
    routes: z.array(routeRuleSchema).default([]),
    /** Aliases tried, in order, when every deployment of this one failed retryably or is open. */
    fallbacks: z.array(z.string().min(1)).default([]),
    /** Also fall back when the provider says the prompt exceeds the context window. */
    fallbackOnContextLength: z.boolean().default(false),
    retry: retrySchema.default({
      maxAttempts: 2,
      initialBackoffMs: 250,
      maxBackoffMs: 8_000,
      totalBudgetMs: 60_000,
      maxRetryAfterMs: 30_000,
    }),
    /**
     * Start a second attempt on another deployment when no first token (unary: no answer)
     * came within `delayMs` — or, with `percentile`, within that percentile of the first
     * deployment's recently observed times (`delayMs` until 20 samples were seen).
     */
    hedge: z
      .object({ delayMs: positiveMs, percentile: z.number().min(50).max(99.9).optional() })
      .strict()
      .optional(),
    /** Off by default: a static answer, flagged degraded, when every candidate failed. */
    degraded: z
      .object({ message: z.string().min(1) })
      .strict()
      .optional(),
  })
  .strict();

const tlsSchema = z
  .object({
    certFile: z.string().min(1),
    keyFile: z.string().min(1),
    /**
     * PEM CA certificate(s) client certificates are verified against (mTLS). Set: the server
     * asks every caller for a certificate but does not fail the handshake without a valid
     * one: such a call gets UNAUTHENTICATED unless it presents an API key or JWT.
     */
    clientCaFile: z.string().min(1).optional(),
  })
  .strict();

const http2Schema = z
  .object({
    /** SETTINGS_MAX_CONCURRENT_STREAMS: open streams per connection; more are refused (RST_STREAM REFUSED_STREAM). */
    maxConcurrentStreams: z
      .number()
      .int()
      .min(1)
      .max(2 ** 31 - 1)
      .default(100),
    /** Memory one HTTP/2 session may hold in node's HTTP/2 layer (node's maxSessionMemory); beyond it new streams are refused. */
    maxSessionMemoryMb: z.number().int().min(1).max(1024).default(10),
    /**
     * An HTTP/2 PING is sent on a connection with open streams after this long without one,
     * so a long wait (a model thinking, a quiet stream) keeps the connection alive through
     * proxies and load balancers that drop idle ones; 0: no pings.
     */
    keepAlivePingMs: z.number().int().min(0).max(2_147_483_647).default(30_000),
    /** A connection whose peer does not answer a keep-alive PING within this is closed. */
    keepAlivePingTimeoutMs: z.number().int().min(1).max(2_147_483_647).default(20_000),
  })
  .strict();

const serverSchema = z
  .object({
    /** Largest request body accepted, in bytes. */
    maxRequestBytes: z
      .number()
      .int()
      .positive()
      .default(4 * 1024 * 1024),
    /** On SIGTERM: how long in-flight calls may run before they are cancelled. */
    drainTimeoutMs: z.number().int().min(0).default(10_000),
    /** Time to receive a request's headers (slowloris guard, HTTP/1.1). */
    headersTimeoutMs: positiveMs.default(30_000),
    /** Idle keep-alive connections are closed after this long. */
    keepAliveTimeoutMs: positiveMs.default(65_000),
    /**
     * Longest caller deadline (`grpc-timeout`, `connect-timeout-ms`); a longer one is clamped
     * to it. At most 2^31-1 ms, what a timer holds (src/server/timeout-clamp.ts).
     */
    maxDeadlineMs: z.number().int().positive().max(2_147_483_647).default(2_147_483_647),
    /**
     * From a request's headers to the end of its body (HTTP/2 END_STREAM; HTTP/1.1: the
     * whole request, node's requestTimeout). A stream past it is reset (RST_STREAM
     * ENHANCE_YOUR_CALM), an HTTP/1.1 request answered 408. Waiting for an answer is not
     * bounded by it: only the caller's own bytes are.
     */
    requestBodyTimeoutMs: positiveMs.default(30_000),
    /**
     * A response with bytes queued that the caller does not read (no flow-control window,
     * socket not drained) for this long is reset and its call cancelled. A call waiting for
     * a model's first token has nothing queued and is not affected.
     */
    writeStallTimeoutMs: positiveMs.default(30_000),
    /**
     * Request body bytes being received at once, across the process; the body that would
     * cross it is refused with RESOURCE_EXHAUSTED (SERVER_OVERLOADED, retry after 1 s). Bodies
     * the fast lanes read count; connect-node's own reads (compressed bodies) do not.
     */
    maxBufferedRequestBytes: z
      .number()
      .int()
      .positive()
      .default(256 * 1024 * 1024),
    /** Calls (requests, streams) in progress per process; beyond it new ones are refused at once with RESOURCE_EXHAUSTED. */
    maxConcurrentCalls: z.number().int().positive().default(10_000),
    /**
     * At `maxConcurrentCalls`, up to `size` new calls wait (FIFO, their bodies unread) for a
     * call to end, each at most `maxWaitMs`; beyond either they are refused. `size: 0`: no
     * queue, refused at once.
     */
    queue: z
      .object({
        size: z.number().int().min(0).max(100_000).default(128),
        maxWaitMs: positiveMs.max(60_000).default(250),
      })
      .strict()
      .default({ size: 128, maxWaitMs: 250 }),
    /** Largest request header block: HTTP/1.1 header bytes, HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE. */
    maxHeaderBytes: z
      .number()
      .int()
      .min(1024)
      .max(1024 * 1024)
      .default(16 * 1024),
    http2: http2Schema.default({
      maxConcurrentStreams: 100,
      maxSessionMemoryMb: 10,
      keepAlivePingMs: 30_000,
      keepAlivePingTimeoutMs: 20_000,
    }),
    /** GET /healthz lists deployment breaker states and in-flight counts; off: only `status`. */
    healthzDetails: z.boolean().default(false),
    /** Server-sent events (the OpenAI-compatible API): a `: keep-alive` comment after `heartbeatMs` without a write; 0: none. */
    sse: z
      .object({ heartbeatMs: z.number().int().min(0).max(2_147_483_647).default(15_000) })
      .strict()
      .default({ heartbeatMs: 15_000 }),
    /** TLS with ALPN h2 + http/1.1. Unset: cleartext HTTP/1.1 and h2c on the same port. */
    tls: tlsSchema.optional(),
  })
  .strict();

const resilienceSchema = z
  .object({
    /** Process-wide: retries may be at most this fraction of recent requests (no retry storms). */
    retryBudget: z
      .object({
        ratio: z.number().min(0).max(1).default(0.2),
        minRetriesPerSecond: z.number().min(0).default(5),
        windowMs: positiveMs.default(10_000),
      })
      .strict()
      .default({ ratio: 0.2, minRetriesPerSecond: 5, windowMs: 10_000 }),
    /** One circuit breaker per deployment. */
    breaker: z
      .object({
        /** Open when this share of calls in the window failed by the deployment's fault. */
        errorThresholdPercentage: z.number().min(1).max(100).default(50),
        /** ... and at least this many calls were seen in the window. */
        volumeThreshold: z.number().int().min(1).default(10),
        rollingWindowMs: positiveMs.default(10_000),
        /** Open → half-open (one probe) after this long. */
        resetTimeoutMs: positiveMs.default(30_000),
      })
      .strict()
      .default({ errorThresholdPercentage: 50, volumeThreshold: 10, rollingWindowMs: 10_000, resetTimeoutMs: 30_000 }),
  })
  .strict();

const logSchema = z
  .object({
    level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  })
  .strict();

const telemetrySchema = z
  .object({
    /**
     * Spans (OpenTelemetry). `traceparent` is always read from callers and sent to
     * providers; export is off unless `exporter: otlp` here or OTEL_TRACES_EXPORTER=otlp.
     * The standard OTEL_* variables (endpoint, headers, sampler, service name) apply and
     * win over this file (docs/observability.md).
     */
    tracing: z
      .object({
        exporter: z.enum(["none", "otlp"]).default("none"),
        /** OTLP/HTTP base URL (".../v1/traces" is appended); OTEL_EXPORTER_OTLP_ENDPOINT wins. */
        endpoint: z.url({ protocol: /^https?$/ }).optional(),
        /** OTLP/HTTP encoding; OTEL_EXPORTER_OTLP_PROTOCOL wins. */
        protocol: z.enum(["http/protobuf", "http/json"]).default("http/protobuf"),
        /** Share of new traces sampled (a caller's sampled flag is followed); OTEL_TRACES_SAMPLER wins. */
        sampleRatio: z.number().min(0).max(1).default(1),
      })
      .strict()
      .default({ exporter: "none", protocol: "http/protobuf", sampleRatio: 1 }),
    /** Prometheus exposition: on the serving port (default), on the admin address, or off. */
    metrics: z
      .object({
        expose: z.enum(["serving", "admin", "off"]).default("serving"),
        path: z
          .string()
          .regex(/^\/[A-Za-z0-9/_.-]*$/)
          .default("/metrics"),
      })
      .strict()
      .default({ expose: "serving", path: "/metrics" }),
  })
  .strict();

const adminSchema = z
  .object({
    /**
     * The admin address: metrics (with `telemetry.metrics.expose: admin`), health details
     * and on-demand profiling. Never the serving port. A bare port binds loopback. Unset: no
     * admin listener.
     */
    listen: z.string().optional(),
  })
  .strict();

/** A CIDR range (`10.0.0.0/8`, `fd00::/8`) or a single address. */
const cidrSchema = z.string().refine((value) => parseCidr(value) !== undefined, {
  message: "expected an IPv4 or IPv6 address or CIDR range, e.g. 10.0.0.0/8 or fd00::/8",
});

const tenantApiKeySchema = z
  .object({
    /** Lowercase hex SHA-256 of the whole key string: only the hash is stored. */
    sha256: z.string().regex(/^[0-9a-f]{64}$/, "expected the lowercase hex SHA-256 of the key (64 characters)"),
    /** Names the key in logs, spans and metrics (never the key). Default: "sha256:" + its first 8 hex digits. */
    id: z
      .string()
      .regex(/^[A-Za-z0-9_.:-]{1,64}$/, "1–64 letters, digits, _ . : -")
      .optional(),
    /** After this instant (ISO 8601 with a zone) the key is refused. */
    expiresAt: z.iso.datetime({ offset: true }).optional(),
    /** A disabled key is refused (kept in the file, e.g. while it is being rotated out). */
    disabled: z.boolean().default(false),
    /** Limits of this key alone, within its tenant's. */
    limits: rateLimitsSchema.optional(),
  })
  .strict();

/** A shared secret for signed requests (HMAC-SHA256): stored as it is, since verifying an HMAC needs it. */
const tenantSigningKeySchema = z
  .object({
    /** Sent by the caller in `x-sluice-key-id`; names the key in logs (never the secret). Unique across tenants. */
    id: z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, "1–64 letters, digits, _ . : -"),
    /** At least 32 characters (e.g. `${SIGNING_SECRET}` from the environment). */
    secret: z.string().min(32, "at least 32 characters"),
  })
  .strict();

const tenantSchema = z
  .object({
    apiKeys: z.array(tenantApiKeySchema).default([]),
    /** Keys for signed requests (`x-sluice-signature`, see identity/signed-request.ts). */
    signingKeys: z.array(tenantSigningKeySchema).default([]),
    /** Aliases this tenant may call: names or glob patterns (`*` any run of characters, `?` one). */
    models: z.array(z.string().min(1)),
    /** Addresses this tenant's credentials may be used from; unset: anywhere (within `auth.allowFrom`). */
    allowFrom: z.array(cidrSchema).optional(),
    /** Client certificates (verified against `server.tls.clientCaFile`) that are this tenant. */
    mtls: z
      .object({
        /** Subject common names, exactly as in the certificate (`billing`, not `CN=billing`). */
        subjects: z.array(z.string().min(1).max(256)).optional(),
        /** URI subject alternative names, exactly (e.g. a SPIFFE id `spiffe://example.org/team-a`). */
        uris: z.array(z.string().min(1).max(2048)).optional(),
      })
      .strict()
      .optional(),
    /** Rate limits of the whole tenant (every key and credential together). */
    limits: rateLimitsSchema.optional(),
    /** Rate limits per model: alias name or glob → limits, each alias counted apart. */
    modelLimits: z.record(z.string().min(1), rateLimitsSchema).default({}),
    /** Spending limits per UTC day and month. */
    budget: budgetSchema.optional(),
    /** This tenant's credentials may call AdminService (usage of every tenant). */
    admin: z.boolean().default(false),
  })
  .strict();

/**
 * Signature algorithms a JWT may use: asymmetric only, so the key that verifies can never
 * sign (no shared secret; an HS256 token "signed" with a published public key is refused).
 * `none` is not in the list at all.
 */
export const jwtAlgorithms = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
  "Ed25519",
] as const;

const jwtSchema = z
  .object({
    /** A JWKS document on disk, re-read when it changes (watched, and checked every `refreshMs`). */
    jwksFile: z.string().min(1).optional(),
    /** A JWKS served over HTTP(S): fetched on first use, again after `refreshMs` and on an unknown `kid`. */
    jwksUrl: z
      .string()
      .refine((value) => URL.canParse(value) && /^https?:$/.test(new URL(value).protocol), {
        message: "expected an http:// or https:// URL",
      })
      .optional(),
    /** The only algorithms accepted: a token's own `alg` header chooses among these, never beyond them. */
    algorithms: z.array(z.enum(jwtAlgorithms)).min(1),
    /** The `iss` every token must carry. */
    issuer: z.string().min(1),
    /** An `aud` every token must carry. */
    audience: z.string().min(1),
    /** The claim naming the caller's tenant: a configured tenant, whose `models` and `allowFrom` apply. */
    tenantClaim: z.string().min(1).default("tenant"),
    /** The claim shown as the key id on the access line (never the token). */
    keyIdClaim: z.string().min(1).default("sub"),
    /** Clock skew allowed on `exp` and `nbf`, in seconds. */
    clockToleranceSec: z.number().int().min(0).max(300).default(30),
    /** JWKS URL: how long fetched keys are used before they are fetched again. JWKS file: the stat fallback period. */
    refreshMs: z.number().int().min(100).default(60_000),
    /** JWKS URL: least time between two fetches (a token with an unknown `kid` refetches at most this often). */
    cooldownMs: z.number().int().min(0).default(30_000),
    /** Verified tokens remembered (until they expire) so a token seen before costs no signature check. 0: none. */
    cacheSize: z.number().int().min(0).default(10_000),
  })
  .strict()
  .refine((jwt) => (jwt.jwksFile === undefined) !== (jwt.jwksUrl === undefined), {
    message: "set exactly one of jwksFile and jwksUrl",
  });

const authSchema = z
  .object({
    /**
     * With no tenants, calls are anonymous; that is allowed only on a loopback address
     * unless this is true (anyone who reaches the port then spends the provider keys).
     */
    allowAnonymous: z.boolean().default(false),
    /** Addresses any call may come from; unset: anywhere. */
    allowFrom: z.array(cidrSchema).optional(),
    /** Bearer JWTs from an identity provider, verified against its JWKS; unset: API keys only. */
    jwt: jwtSchema.optional(),
    /** Signed requests (`tenants.*.signingKeys`): how far a request's timestamp may be from the gateway's clock. */
    signedRequests: z
      .object({ windowSec: z.number().int().min(1).max(3600).default(300) })
      .strict()
      .default({ windowSec: 300 }),
  })
  .strict();

const listenSchema = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/, "expected host:port, e.g. 127.0.0.1:8080 or [::1]:8080");

export const configSchema = z
  .object({
    listen: listenSchema.default("127.0.0.1:8080"),
    server: serverSchema.default({
      maxRequestBytes: 4 * 1024 * 1024,
      drainTimeoutMs: 10_000,
      headersTimeoutMs: 30_000,
      keepAliveTimeoutMs: 65_000,
      requestBodyTimeoutMs: 30_000,
      writeStallTimeoutMs: 30_000,
      maxConcurrentCalls: 10_000,
      queue: { size: 128, maxWaitMs: 250 },
      maxBufferedRequestBytes: 256 * 1024 * 1024,
      maxHeaderBytes: 16 * 1024,
      http2: { maxConcurrentStreams: 100, maxSessionMemoryMb: 10, keepAlivePingMs: 30_000, keepAlivePingTimeoutMs: 20_000 },
      healthzDetails: false,
      sse: { heartbeatMs: 15_000 },
      maxDeadlineMs: 2_147_483_647,
    }),
    log: logSchema.default({ level: "info" }),
    telemetry: telemetrySchema.default({
      tracing: { exporter: "none", protocol: "http/protobuf", sampleRatio: 1 },
      metrics: { expose: "serving", path: "/metrics" },
    }),
    admin: adminSchema.default({}),
    /** Callers by tenant: their API keys and the models they may call. None: anonymous (see `auth`). */
    tenants: z.record(z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "1–64 letters, digits, _ . -"), tenantSchema).default({}),
    auth: authSchema.default({ allowAnonymous: false, signedRequests: { windowSec: 300 } }),
    /** Where limits, budgets and usage live: this process, or Redis shared by replicas. */
    state: stateSchema.default({ leaseMs: 30_000 }),
    /** How admission estimates calls (context-window check, reservations). */
    limits: admissionSchema.default({ contextMargin: 0.1, defaultMaxOutputTokens: 4_096 }),
    /** The response cache and coalescing of identical calls; absent: off. */
    cache: cacheSchema.optional(),
    /** Idempotency keys (always on): how long their records live. */
    idempotency: idempotencySchema.default({ ttlSeconds: 86_400, pendingSeconds: 600, maxEntries: 100_000 }),
    resilience: resilienceSchema.default({
      retryBudget: { ratio: 0.2, minRetriesPerSecond: 5, windowMs: 10_000 },
      breaker: { errorThresholdPercentage: 50, volumeThreshold: 10, rollingWindowMs: 10_000, resetTimeoutMs: 30_000 },
    }),
    providers: z.record(z.string().regex(/^[a-zA-Z0-9_.-]+$/, "letters, digits, _ . - only"), providerSchema),
    models: z.record(z.string().min(1), modelSchema),
  })
  .strict()
  .superRefine((config, ctx) => {
    const keyOwners = new Map<string, string>();
    for (const [tenant, { apiKeys }] of Object.entries(config.tenants)) {
      apiKeys.forEach((key, i) => {
        const owner = keyOwners.get(key.sha256);
        if (owner !== undefined) {
          ctx.addIssue({
            code: "custom",
            path: ["tenants", tenant, "apiKeys", i, "sha256"],
            message: `the same key is already listed for tenant "${owner}": a key names one tenant`,
          });
        }
        keyOwners.set(key.sha256, tenant);
      });
    }
    const signingKeyOwners = new Map<string, string>();
    for (const [tenant, { signingKeys }] of Object.entries(config.tenants)) {
      signingKeys.forEach((key, i) => {
        const owner = signingKeyOwners.get(key.id);
        if (owner !== undefined) {
          ctx.addIssue({
            code: "custom",
            path: ["tenants", tenant, "signingKeys", i, "id"],
            message: `the signing key id "${key.id}" is already used by tenant "${owner}": ids are unique`,
          });
        }
        signingKeyOwners.set(key.id, tenant);
      });
    }
    const certificateOwners = new Map<string, string>();
    for (const [tenant, { mtls }] of Object.entries(config.tenants)) {
      if (mtls === undefined) continue;
      if (config.server.tls?.clientCaFile === undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["tenants", tenant, "mtls"],
          message: "client certificates are verified against server.tls.clientCaFile: configure it",
        });
      }
      for (const [kind, names] of [
        ["subjects", mtls.subjects ?? []],
        ["uris", mtls.uris ?? []],
      ] as const) {
        names.forEach((name, i) => {
          const owner = certificateOwners.get(`${kind}\0${name}`);
          if (owner !== undefined && owner !== tenant) {
            ctx.addIssue({
              code: "custom",
              path: ["tenants", tenant, "mtls", kind, i],
              message: `"${name}" is already listed for tenant "${owner}": a certificate names one tenant`,
            });
          }
          certificateOwners.set(`${kind}\0${name}`, tenant);
        });
      }
    }
    if (config.auth.jwt !== undefined && Object.keys(config.tenants).length === 0) {
      ctx.addIssue({
        code: "custom",
        path: ["auth", "jwt"],
        message: "a JWT names a configured tenant (auth.jwt.tenantClaim): configure tenants",
      });
    }
    if (config.telemetry.metrics.expose === "admin" && config.admin.listen === undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["telemetry", "metrics", "expose"],
        message: "admin needs admin.listen (the admin address)",
      });
    }
    if (config.server.maxBufferedRequestBytes < config.server.maxRequestBytes) {
      ctx.addIssue({
        code: "custom",
        path: ["server", "maxBufferedRequestBytes"],
        message: `must be at least server.maxRequestBytes (${config.server.maxRequestBytes}): one whole request must fit`,
      });
    }
    for (const [alias, model] of Object.entries(config.models)) {
      model.fallbacks.forEach((fallback, i) => {
        if (!(fallback in config.models) || fallback === alias) {
          ctx.addIssue({
            code: "custom",
            path: ["models", alias, "fallbacks", i],
            message: fallback === alias ? "an alias cannot fall back to itself" : `unknown model alias "${fallback}"`,
          });
        }
      });
      if (model.strategy === "sticky" && model.stickyKey === undefined) {
        ctx.addIssue({ code: "custom", path: ["models", alias, "stickyKey"], message: "required with strategy sticky" });
      }
      const keys = new Set(model.deployments.map((d) => `${d.provider}/${d.model}`));
      model.routes.forEach((rule, i) => {
        if (rule.match.tenant !== undefined && !(rule.match.tenant in config.tenants)) {
          ctx.addIssue({
            code: "custom",
            path: ["models", alias, "routes", i, "match", "tenant"],
            message: `unknown tenant "${rule.match.tenant}" (configured: ${Object.keys(config.tenants).join(", ") || "none"})`,
          });
        }
        rule.deployments.forEach((key, j) => {
          if (!keys.has(key)) {
            ctx.addIssue({
              code: "custom",
              path: ["models", alias, "routes", i, "deployments", j],
              message: `"${key}" is not a deployment of ${alias} (provider/model: ${[...keys].join(", ")})`,
            });
          }
        });
      });
      model.deployments.forEach((deployment, i) => {
        if (!(deployment.provider in config.providers)) {
          ctx.addIssue({
            code: "custom",
            path: ["models", alias, "deployments", i, "provider"],
            message: `unknown provider "${deployment.provider}" (configured: ${Object.keys(config.providers).join(", ") || "none"})`,
          });
        }
      });
    }
  });

export type SluiceConfig = z.output<typeof configSchema>;
export type ModelConfig = z.output<typeof modelSchema>;
export type AttemptTimeouts = z.output<typeof attemptTimeoutsSchema>;
export type TelemetryConfig = z.output<typeof telemetrySchema>;
export type TenantConfig = z.output<typeof tenantSchema>;
export type AuthConfig = z.output<typeof authSchema>;
export type JwtConfig = z.output<typeof jwtSchema>;

export type {
  AnthropicProviderConfig,
  DemoProviderConfig,
  OpenAIProviderConfig,
  ProviderConfig,
  ProviderTimeouts,
} from "./provider-schema.js";
