import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FinishReason, Role } from "../../gen/sluice/v1/chat_pb.js";
import { within, type CompleteRequestInit } from "../helpers/chat-callers.js";
import {
  caseRequestId,
  caseProtocols,
  createCaseCaller,
  laneServes,
  rewrittenPrompt,
  startCaseServer,
  tcpConnectError,
  type CaseCaller,
  type CaseCallOptions,
  type CaseProtocol,
  type CaseServer,
  type ClientView,
  type Mode,
  type ServerView,
} from "../helpers/lane-case-rig.js";

/*
 * One table of cases (hono's common.case.test.ts pattern), run over every protocol against
 * two servers: fast lanes on, and every call through connect-node (`fastLanes: false`,
 * the reference). Each case asserts what must happen on both, then that what a caller and
 * the interceptors observed is the same on both — so the one interceptor chain is applied
 * by every lane as connect-node applies it.
 */

const modes: readonly Mode[] = ["lanes", "connect-node"];
type Rpc = "unary" | "stream";

const ask = (model: string, text = "one chain for every lane"): CompleteRequestInit => ({
  model,
  messages: [{ role: Role.USER, content: [{ part: { case: "text", value: text } }] }],
});

/** A safety net on every wait for the server's view of a call, never a sleep. */
const boundMs = 3_000;

interface Run {
  readonly mode: Mode;
  readonly protocol: CaseProtocol;
  readonly server: CaseServer;
  readonly caller: CaseCaller;
}

/** One call as the caller and the interceptors saw it. */
interface Observed {
  readonly rpc: Rpc;
  readonly client: ClientView;
  readonly server: ServerView | undefined;
  /** Calls the demo providers started meanwhile (0: the implementation never reached upstream). */
  readonly providerStarts: number;
}

interface LaneCase {
  readonly name: string;
  /** Default: every protocol. */
  readonly protocols?: (protocol: CaseProtocol) => boolean;
  /** Runs on servers of its own (it shuts them down). */
  readonly ownServer?: { readonly drainTimeoutMs: number };
  run(run: Run): Promise<Observed[]>;
  /** What must happen, asserted on lanes and reference alike. */
  check(observed: readonly Observed[], run: Run): void;
  /** Timing-dependent fields left out of the lanes-vs-reference comparison. */
  comparable?(observed: Normalised): unknown;
}

/** A call, then the interceptor's view of it once it saw the end (bounded wait). */
async function observe(run: Run, rpc: Rpc, request: CompleteRequestInit, options: CaseCallOptions = {}): Promise<Observed> {
  const before = run.server.providerStarts();
  const client = await (rpc === "unary" ? run.caller.unary(request, options) : run.caller.stream(request, options));
  await within(run.server.ended(client.id), boundMs, `${run.mode}: the interceptor saw ${rpc} ${client.id} end`);
  return { rpc, client, server: run.server.view(client.id), providerStarts: run.server.providerStarts() - before };
}

const routeHeaders = { "sluice-provider": "demo", "sluice-upstream-model": "sluice-demo-1", "sluice-attempts": "1" };
const betaRouteHeaders = { ...routeHeaders, "sluice-upstream-model": "sluice-demo-beta" };

/** Where a call's route headers are: response headers (unary) or trailers (streams). */
function routeOf(o: Observed): Record<string, string> {
  return o.rpc === "unary" ? o.client.headers : o.client.trailers;
}

function eventKinds(o: Observed): string[] {
  return o.client.events.map((event) => (event as [string])[0]);
}

/** Streams: the start event first, some words, the done event last. */
function expectWholeStream(o: Observed, mode: Mode): void {
  const kinds = eventKinds(o);
  expect.soft(kinds[0], mode).toBe("start");
  expect.soft(kinds.at(-1), mode).toBe("done");
  expect.soft(kinds.filter((kind) => kind === "text").length, mode).toBeGreaterThan(3);
}

/** Streams cut mid-way: at least one event arrived, the done event did not. */
function expectCutStream(o: Observed, mode: Mode, atLeast = 1): void {
  const kinds = eventKinds(o);
  expect.soft(kinds.length, mode).toBeGreaterThanOrEqual(atLeast);
  expect.soft(kinds[0], mode).toBe("start");
  expect.soft(kinds, mode).not.toContain("done");
}

/** The answer's text: the unary message's content, or the stream's text events joined. */
function answerText(o: Observed): string {
  if (o.rpc === "unary") return ((o.client.events[0] as { content?: string[] } | undefined)?.content ?? []).join("");
  return o.client.events.map((event) => ((event as unknown[])[0] === "text" ? (event as [string, string])[1] : "")).join("");
}

/**
 * A deadline past what a timer holds: 597 hours as `grpc-timeout` says it, 2^31 ms as
 * `connect-timeout-ms`; grpc-js sends its own (and holds it without a timer: it is that long).
 */
function longDeadline(protocol: CaseProtocol): CaseCallOptions {
  if (protocol === "grpc-js-h2c") return { timeoutMs: 597 * 3_600_000 };
  return { headers: protocol.startsWith("connect-") ? { "connect-timeout-ms": "2147483648" } : { "grpc-timeout": "597H" } };
}

/** A slow stream of 8 words (~300 ms): long beside a deadline fired after 1 ms, short for a test. */
const slowShort = (): CompleteRequestInit => ({ ...ask("slow"), maxOutputTokens: 8 });

const both = (make: (rpc: Rpc) => LaneCase): LaneCase[] => [make("unary"), make("stream")];
const noGrpcJs = (protocol: CaseProtocol): boolean => protocol !== "grpc-js-h2c";

const cases: LaneCase[] = [
  // 1. Success.
  ...both(
    (rpc): LaneCase => ({
      name: `${rpc}: success — OK, route headers in ${rpc === "unary" ? "headers" : "trailers"}`,
      run: async (run) => [await observe(run, rpc, ask("demo"), { headers: { "x-case": "success" } })],
      check([o], { mode }) {
        expect.soft(o!.client.code, mode).toBe("OK");
        expect.soft(o!.client.errorMetadata, mode).toBeUndefined();
        if (rpc === "unary") {
          expect.soft(o!.client.headers, mode).toEqual({
            ...routeHeaders,
            "x-case-header": "from-interceptor",
            "x-case-echo": "success",
            "x-request-id": caseRequestId,
          });
          expect.soft(o!.client.trailers, mode).toEqual({ "x-case-trailer": "from-interceptor" });
          expect
            .soft(o!.client.events[0], mode)
            .toMatchObject({ provider: "demo", finishReason: FinishReason.STOP, role: Role.ASSISTANT });
        } else {
          expect.soft(o!.client.headers, mode).toEqual({
            "x-case-header": "from-interceptor",
            "x-case-echo": "success",
            "x-request-id": caseRequestId,
          });
          expect
            .soft(o!.client.trailers, mode)
            .toEqual({ ...routeHeaders, "x-case-trailer": "from-interceptor", "x-case-end": "OK" });
          expectWholeStream(o!, mode);
        }
        expect.soft(o!.server?.outcome, mode).toBe("OK");
        expect.soft(o!.server?.inner, mode).toEqual({ route: null });
        expect.soft(o!.providerStarts, mode).toBe(1);
      },
    }),
  ),

  // 2. Errors from the implementation: code, message and details decoded.
  ...both(
    (rpc): LaneCase => ({
      name: `${rpc}: unknown model — NOT_FOUND with ErrorInfo MODEL_NOT_FOUND`,
      run: async (run) => [await observe(run, rpc, ask("no-such-model"))],
      check([o], { mode }) {
        expect.soft(o!.client.code, mode).toBe("NOT_FOUND");
        expect
          .soft(o!.client.message, mode)
          .toBe('model "no-such-model" is not served by this gateway (see ModelService.ListModels)');
        expect.soft(o!.client.details, mode).toEqual({
          errorInfo: [
            { reason: "MODEL_NOT_FOUND", domain: "sluice", metadata: { model: "no-such-model", request_id: caseRequestId } },
          ],
          retryDelayMs: [],
          fieldViolations: [],
        });
        // Unary: the implementation threw out of next(); a stream fails on its first read,
        // after next() returned, so the stream's own end trailers carry the outcome.
        expect
          .soft(o!.client.errorMetadata, mode)
          .toMatchObject(
            rpc === "unary"
              ? { "x-case-seen": "NOT_FOUND" }
              : { "x-case-end": "NOT_FOUND", "x-case-trailer": "from-interceptor" },
          );
        expect.soft(o!.client.events, mode).toEqual([]);
        expect.soft(o!.server?.outcome, mode).toBe("NOT_FOUND");
        expect.soft(o!.providerStarts, mode).toBe(0);
      },
    }),
  ),
  ...both(
    (rpc): LaneCase => ({
      name: `${rpc}: invalid request — INVALID_ARGUMENT with BadRequest`,
      run: async (run) => [await observe(run, rpc, { model: "demo", messages: [] })],
      check([o], { mode }) {
        expect.soft(o!.client.code, mode).toBe("INVALID_ARGUMENT");
        expect.soft(o!.client.message, mode).toBe("messages: required: at least one message");
        expect.soft(o!.client.details, mode).toEqual({
          errorInfo: [{ reason: "REQUIRED_FIELD", domain: "sluice", metadata: { request_id: caseRequestId } }],
          retryDelayMs: [],
          fieldViolations: [{ field: "messages", description: "required: at least one message", reason: "REQUIRED_FIELD" }],
        });
        expect.soft(o!.server?.outcome, mode).toBe("INVALID_ARGUMENT");
        expect.soft(o!.providerStarts, mode).toBe(0);
      },
    }),
  ),

  // 3. A response header and trailer an interceptor sets reach the caller.
  ...both(
    (rpc): LaneCase => ({
      name: `${rpc}: interceptor sets a response header and a trailer`,
      run: async (run) => [await observe(run, rpc, ask("demo"))],
      check([o], { mode }) {
        expect.soft(o!.client.code, mode).toBe("OK");
        expect.soft(o!.client.headers["x-case-header"], mode).toBe("from-interceptor");
        expect.soft(o!.client.headers["x-case-trailer"], mode).toBeUndefined();
        expect.soft(o!.client.trailers["x-case-trailer"], mode).toBe("from-interceptor");
        // Set when the stream ended, long after the headers went out.
        if (rpc === "stream") expect.soft(o!.client.trailers["x-case-end"], mode).toBe("OK");
      },
    }),
  ),
  // 4. Interceptors and the implementation see the same request headers on every lane.
  ...both(
    (rpc): LaneCase => ({
      name: `${rpc}: interceptor and implementation read request headers`,
      run: async (run) => [await observe(run, rpc, ask("demo"), { headers: { "x-case": "read-me", "x-case-route": "beta" } })],
      check([o], { mode }) {
        expect.soft(o!.client.code, mode).toBe("OK");
        expect.soft(o!.server?.caseHeader, mode).toBe("read-me");
        expect.soft(o!.client.headers["x-case-echo"], mode).toBe("read-me");
        expect
          .soft(o!.server?.requestHeaderNames, mode)
          .toEqual(expect.arrayContaining(["x-case", "x-case-call", "x-case-route"]));
        expect.soft(o!.server?.inner, mode).toEqual({ route: "beta" });
        // The implementation routed on the header (a conditional route).
        expect.soft(routeOf(o!), mode).toMatchObject(betaRouteHeaders);
      },
    }),
  ),
  // 4b. connect builds the implementation's context from the request an interceptor passed to next()
  // (its mergeRequest): headers, signal and context values handed on reach the implementation.
  ...both(
    (rpc): LaneCase => ({
      name: `${rpc}: interceptor hands next() a rewritten request`,
      run: async (run) => [await observe(run, rpc, ask("demo"), { headers: { "x-case-action": "rewrite-request" } })],
      check([o], { mode }) {
        expect.soft(o!.client.code, mode).toBe("OK");
        expect.soft(o!.server?.inner, mode).toEqual({ route: "beta" });
        expect.soft(routeOf(o!), mode).toMatchObject(betaRouteHeaders);
      },
    }),
  ),

  // 4c. connect's request is a plain object: `{ ...req, message }` keeps its headers for the
  // interceptors after it (here the probe, which finds the call by its x-case-call header).
  ...both(
    (rpc): LaneCase => ({
      name: `${rpc}: interceptor hands next() { ...req, message } — headers still there`,
      run: async (run) => [await observe(run, rpc, ask("demo"), { headers: { "x-case-action": "spread-request" } })],
      check([o], { mode }) {
        expect.soft(o!.client.code, mode).toBe("OK");
        expect.soft(answerText(o!), mode).toContain(rewrittenPrompt);
        expect.soft(o!.server?.inner, mode).toEqual({ route: null });
      },
    }),
  ),

  // 4d. The request's URL, as connect documents it: "the URL received by the server".
  ...both(
    (rpc): LaneCase => ({
      name: `${rpc}: interceptor sees the URL received by the server`,
      run: async (run) => [await observe(run, rpc, ask("demo"))],
      check([o], { mode, server }) {
        const method = rpc === "unary" ? "Complete" : "StreamComplete";
        expect.soft(o!.server?.url, mode).toBe(`${server.url}/sluice.v1.ChatService/${method}`);
      },
    }),
  ),

  // 5. An interceptor rejects before the implementation runs.
  ...both(
    (rpc): LaneCase => ({
      name: `${rpc}: interceptor rejects with PERMISSION_DENIED before the implementation`,
      run: async (run) => [await observe(run, rpc, ask("demo"), { headers: { "x-case": "reject", "x-case-action": "reject" } })],
      check([o], { mode }) {
        expect.soft(o!.client.code, mode).toBe("PERMISSION_DENIED");
        expect.soft(o!.client.message, mode).toBe("case interceptor: permission denied");
        expect.soft(o!.client.details, mode).toEqual({
          errorInfo: [{ reason: "CASE_REJECTED", domain: "lane-cases.test", metadata: { case: "reject" } }],
          retryDelayMs: [],
          fieldViolations: [],
        });
        expect.soft(o!.client.errorMetadata, mode).toMatchObject({ "x-case-rejected": "yes" });
        expect.soft(o!.client.events, mode).toEqual([]);
        expect.soft(o!.server?.inner, mode).toBeUndefined();
        expect.soft(o!.providerStarts, mode).toBe(0);
      },
    }),
  ),

  // 6. The interceptor sees how a stream ended: OK, an error, the caller gone.
  {
    name: "stream: interceptor observes the end — ok, error, cancelled",
    run: async (run) => [
      await observe(run, "stream", ask("demo")),
      await observe(run, "stream", ask("no-such-model")),
      await observe(run, "stream", ask("slow"), { cancelAfterEvents: 1 }),
    ],
    check(observed, { mode }) {
      expect
        .soft(
          observed.map((o) => o.server?.outcome),
          mode,
        )
        .toEqual(["OK", "NOT_FOUND", "CANCELED"]);
      expect
        .soft(
          observed.map((o) => o.client.code),
          mode,
        )
        .toEqual(["OK", "NOT_FOUND", "CANCELED"]);
    },
    comparable: (observed) => observed.map((o) => ({ code: o.client.code, outcome: o.server?.outcome })),
  },

  // 7. Deadlines mid-call: enforced by the server (only the header sent) and by the caller.
  {
    name: "stream: deadline (server-enforced) mid-stream — DEADLINE_EXCEEDED after some events",
    protocols: noGrpcJs,
    run: async (run) => [await observe(run, "stream", ask("slow"), { deadlineHeaderMs: 200 })],
    check([o], { mode }) {
      expect.soft(o!.client.code, mode).toBe("DEADLINE_EXCEEDED");
      expectCutStream(o!, mode, 2);
      expect.soft(o!.server?.outcome, mode).toBe("DEADLINE_EXCEEDED");
      expect.soft(o!.providerStarts, mode).toBe(1);
    },
    comparable: ([o]) => ({ ...o, client: { ...o!.client, events: undefined } }),
  },
  {
    name: "unary: deadline (server-enforced) — DEADLINE_EXCEEDED",
    protocols: noGrpcJs,
    run: async (run) => [await observe(run, "unary", ask("stuck"), { deadlineHeaderMs: 150 })],
    check([o], { mode }) {
      expect.soft(o!.client.code, mode).toBe("DEADLINE_EXCEEDED");
      expect.soft(o!.server?.outcome, mode).toBe("DEADLINE_EXCEEDED");
      expect.soft(o!.providerStarts, mode).toBe(1);
    },
  },
  ...both(
    (rpc): LaneCase => ({
      name: `${rpc}: the caller's own timeout fires mid-call — DEADLINE_EXCEEDED`,
      run: async (run) => [await observe(run, rpc, ask(rpc === "unary" ? "stuck" : "slow"), { timeoutMs: 200 })],
      check([o], { mode }) {
        expect.soft(o!.client.code, mode).toBe("DEADLINE_EXCEEDED");
        if (rpc === "stream") expectCutStream(o!, mode, 2);
        // The caller gives up as the server's own timer fires: either reaches the server first. Over
        // HTTP/2 connect-es resets with INTERNAL_ERROR, which connect-node reads as INTERNAL (case 8b).
        expect.soft(["DEADLINE_EXCEEDED", "CANCELED", "INTERNAL"], mode).toContain(o!.server?.outcome);
      },
      comparable: ([o]) => ({ code: o!.client.code, requestHeaderNames: o!.server?.requestHeaderNames }),
    }),
  ),

  // 7b. A deadline longer than a timer holds (2^31 ms and up, valid in both protocols) is clamped to
  // server.maxDeadlineMs; it used to reach setTimeout, which fired it after 1 ms.
  {
    name: "stream: a deadline past what a timer holds — clamped, the whole stream arrives",
    run: async (run) => [await observe(run, "stream", slowShort(), longDeadline(run.protocol))],
    check([o], { mode }) {
      expect.soft(o!.client.code, mode).toBe("OK");
      expectWholeStream(o!, mode);
      expect.soft(o!.server?.outcome, mode).toBe("OK");
    },
  },
  {
    name: "unary: a deadline past what a timer holds — clamped, the call runs until the caller cancels",
    async run(run) {
      // The clock: a slow stream, started once the provider has the unary call. By its end a
      // deadline fired after 1 ms would long have ended the call; then the caller cancels.
      const clock = run.server.providerStarted().then(() => observe(run, "stream", slowShort()));
      const unary = await observe(run, "unary", ask("stuck"), { ...longDeadline(run.protocol), cancelWhen: clock });
      return [unary, await clock];
    },
    check([unary, clock], { mode }) {
      expect.soft(clock!.client.code, mode).toBe("OK");
      expectWholeStream(clock!, mode);
      expect.soft(unary!.client.code, mode).toBe("CANCELED");
      expect.soft(unary!.server?.outcome, mode).toBe("CANCELED");
    },
    // As case 8: the caller's own words for its cancel.
    comparable: ([unary, clock]) => [{ ...unary, client: { ...unary!.client, message: undefined } }, clock],
  },

  // 8. The caller cancels mid-call: the server-side interceptor sees the call end as cancelled.
  {
    name: "stream: caller cancels mid-stream — interceptor sees CANCELED",
    run: async (run) => [await observe(run, "stream", ask("slow"), { cancelAfterEvents: 2 })],
    check([o], { mode }) {
      expect.soft(o!.client.code, mode).toBe("CANCELED");
      expectCutStream(o!, mode, 2);
      expect.soft(o!.server?.outcome, mode).toBe("CANCELED");
      expect.soft(o!.providerStarts, mode).toBe(1);
    },
    comparable: ([o]) => ({ ...o, client: { ...o!.client, events: undefined, message: undefined } }),
  },
  {
    name: "unary: caller cancels while the provider works — interceptor sees CANCELED",
    run: async (run) => [await observe(run, "unary", ask("stuck"), { cancelWhen: run.server.providerStarted() })],
    check([o], { mode }) {
      expect.soft(o!.client.code, mode).toBe("CANCELED");
      expect.soft(o!.server?.outcome, mode).toBe("CANCELED");
      expect.soft(o!.providerStarts, mode).toBe(1);
    },
    // The caller's own message for its cancel; grpc-js and connect-es word it differently, not lanes.
    comparable: ([o]) => ({ ...o, client: { ...o!.client, message: undefined } }),
  },

  // 8b. An HTTP/2 caller that resets with a code other than CANCEL (connect-es does on its own deadline).
  {
    name: "stream: HTTP/2 caller resets mid-stream with INTERNAL_ERROR",
    // connect-es over HTTP/2 (grpc-js is h2c).
    protocols: (protocol) => protocol.endsWith("-h2"),
    run: async (run) => [
      await observe(run, "stream", ask("slow"), {
        cancelAfterEvents: 1,
        cancelReason: new ConnectError("the caller gave up", Code.DeadlineExceeded),
      }),
    ],
    check([o], { mode }) {
      expect.soft(o!.client.code, mode).toBe("DEADLINE_EXCEEDED");
      // connect-node reads the reset code (connectErrorFromH2ResetCode: INTERNAL_ERROR → INTERNAL).
      expect.soft(o!.server?.outcome, mode).toBe("INTERNAL");
    },
    comparable: ([o]) => ({ ...o, client: { ...o!.client, events: undefined } }),
  },

  // 9. Drain: shutdown with calls in flight, a short drainTimeoutMs.
  {
    name: "unary + stream: shutdown mid-call — UNAVAILABLE after drainTimeoutMs; new calls refused",
    ownServer: { drainTimeoutMs: 100 },
    async run(run) {
      let firstEvent!: () => void;
      const streaming = new Promise<void>((resolve) => (firstEvent = resolve));
      const bothStarted = run.server.providerStarted(2);
      const stream = observe(run, "stream", ask("slow"), { onEvent: () => firstEvent() });
      const unary = observe(run, "unary", ask("stuck"));
      await within(Promise.all([streaming, bothStarted]), boundMs, `${run.mode}: both calls in flight`);
      const shutdownAt = performance.now();
      const shutdown = run.server.started.server.shutdown("lane case");
      const observed = await Promise.all([unary, stream]);
      const cutAfterMs = performance.now() - shutdownAt;
      await within(shutdown, boundMs, `${run.mode}: shutdown`);
      const after = await run.caller.unary(ask("demo"));
      drainFacts.set(run, { cutAfterMs, after, tcp: await tcpConnectError(run.server.port) });
      return observed;
    },
    check(observed, run) {
      const { mode } = run;
      for (const o of observed) {
        expect.soft(o.client.code, mode).toBe("UNAVAILABLE");
        expect.soft(o.client.message, mode).toBe("server is shutting down");
        expect.soft(o.server?.outcome, mode).toBe("UNAVAILABLE");
      }
      expectCutStream(observed[1]!, mode);
      const facts = drainFacts.get(run)!;
      // In-flight calls are given drainTimeoutMs before they are cancelled (timer slack aside).
      expect.soft(facts.cutAfterMs, mode).toBeGreaterThanOrEqual(90);
      // A kept-alive HTTP/1.1 socket the server closed may fail the write (EPIPE) rather than the connect.
      expect.soft(facts.after.code, mode).not.toBe("OK");
      expect.soft(run.server.view(facts.after.id), mode).toBeUndefined();
      expect.soft(facts.tcp, mode).toBe("ECONNREFUSED");
    },
    comparable: (observed) => observed.map((o) => ({ ...o, client: { ...o.client, events: undefined } })),
  },
];

const drainFacts = new Map<Run, { cutAfterMs: number; after: ClientView; tcp: string | undefined }>();

/** The observations with what differs by nature between two servers left out: ids, the origin, who served. */
type Normalised = ReturnType<typeof normalise>;
function normalise(observed: readonly Observed[], run: Run) {
  return observed.map((o) => {
    const { id: _id, ...client } = o.client;
    const server = o.server && { ...o.server, servedBy: undefined, url: o.server.url.replace(run.server.url, "ORIGIN") };
    return { rpc: o.rpc, client, server, providerStarts: o.providerStarts };
  });
}

const servers = new Map<Mode, CaseServer>();
const callers = new Map<string, CaseCaller>();

beforeAll(async () => {
  for (const mode of modes) servers.set(mode, await startCaseServer(mode));
});

afterAll(async () => {
  for (const caller of callers.values()) caller.close();
  await Promise.all([...servers.values()].map((server) => server.close()));
});

async function runCase(c: LaneCase, protocol: CaseProtocol, mode: Mode): Promise<{ run: Run; observed: Observed[] }> {
  if (c.ownServer !== undefined) {
    const server = await startCaseServer(mode, c.ownServer);
    const caller = createCaseCaller(protocol, server.url);
    try {
      const run = { mode, protocol, server, caller };
      return { run, observed: await c.run(run) };
    } finally {
      caller.close();
      await server.close();
    }
  }
  const server = servers.get(mode)!;
  const key = `${mode} ${protocol}`;
  let caller = callers.get(key);
  if (caller === undefined) callers.set(key, (caller = createCaseCaller(protocol, server.url)));
  const run = { mode, protocol, server, caller };
  return { run, observed: await c.run(run) };
}

describe.each(caseProtocols)("lane cases over %s", (protocol) => {
  for (const c of cases.filter((c) => c.protocols?.(protocol) ?? true)) {
    it(c.name, async () => {
      // Both servers at once: they share nothing, and the slow cases take half the time.
      const results = await Promise.all(modes.map((mode) => runCase(c, protocol, mode)));
      for (const { run, observed } of results) {
        c.check(observed, run);
        for (const o of observed) {
          if (o.server === undefined) continue;
          // Who served it: the lane wherever one exists for this protocol, connect-node on the reference.
          const lane = run.mode === "lanes" && laneServes[protocol][o.rpc];
          expect.soft(o.server.servedBy, `${run.mode} ${o.rpc}`).toBe(lane ? "lane" : "connect-node");
        }
      }
      const [lanes, reference] = results.map(({ run, observed }) => {
        const normalised = normalise(observed, run);
        return c.comparable ? c.comparable(normalised) : normalised;
      });
      expect.soft(lanes).toEqual(reference);
    });
  }
});
