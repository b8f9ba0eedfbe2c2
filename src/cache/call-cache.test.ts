import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, type HandlerContext } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import {
  CacheStatus,
  CompleteRequestSchema,
  type StreamCompleteResponse,
  StreamCompleteResponseSchema,
} from "../../gen/sluice/v1/chat_service_pb.js";
import { createMemoryAnswerCache } from "../state/answer-cache.js";
import { type CallCache, createCallCache, type RunStream } from "./call-cache.js";

/**
 * The coalesced stream fan-out (issue 16) through the call cache itself: the lag bound
 * (`cache.streamLagEvents`, here the smallest the schema allows), a caller joining a stream
 * already in flight, and the upstream stream held back while every waiter is behind.
 */

const lagEvents = 16;
const deltas = 80;

function callCache(): CallCache {
  return createCallCache({
    config: { ttlSeconds: 300, maxEntries: 100, maxBytes: 1 << 20, maxEntryBytes: 1 << 20, streamLagEvents: lagEvents },
    idempotency: { ttlSeconds: 60, pendingSeconds: 60, maxEntries: 100 },
    store: createMemoryAnswerCache({ maxEntries: 100, maxBytes: 1 << 20, maxRecords: 100 }),
    failOpen: true,
  });
}

function context(signal: AbortSignal = new AbortController().signal): HandlerContext {
  return {
    signal,
    requestHeader: new Headers(),
    responseHeader: new Headers(),
    responseTrailer: new Headers(),
    values: createContextValues(),
  } as unknown as HandlerContext;
}

let salt = 0;
const request = () =>
  create(CompleteRequestSchema, {
    model: "chat",
    temperature: 0,
    messages: [{ role: Role.USER, content: [{ part: { case: "text", value: `lag ${++salt}` } }] }],
  });

const tick = () => new Promise((resolve) => setTimeout(resolve, 1));

/** An upstream stream: start, `deltas` deltas one tick apart, done; counts its runs and the events it produced. */
function upstream(): { run: RunStream; runs: () => number; produced: () => number } {
  let runs = 0;
  let produced = 0;
  const event = (value: MessageInitShape<typeof StreamCompleteResponseSchema>["event"]) => {
    produced++;
    return create(StreamCompleteResponseSchema, { event: value });
  };
  return {
    runs: () => runs,
    produced: () => produced,
    run: (ctx) =>
      (async function* () {
        runs++;
        yield event({ case: "start", value: { id: "up-1", model: "m", provider: "up" } });
        for (let i = 0; i < deltas; i++) {
          await tick();
          if (ctx.signal.aborted) return;
          yield event({ case: "delta", value: { text: `w${i} ` } });
        }
        yield event({ case: "done", value: { usage: { inputTokens: 3, outputTokens: deltas } } });
      })(),
  };
}

async function collect(events: AsyncIterable<StreamCompleteResponse>): Promise<StreamCompleteResponse[]> {
  const all: StreamCompleteResponse[] = [];
  for await (const event of events) all.push(event);
  return all;
}

const text = (events: readonly StreamCompleteResponse[]) =>
  events.map((e) => (e.event.case === "delta" ? e.event.value.text : "")).join("");
const expected = Array.from({ length: deltas }, (_, i) => `w${i} `).join("");

function stream(cache: CallCache, req: ReturnType<typeof request>, signal?: AbortSignal): AsyncIterator<StreamCompleteResponse> {
  const ctx = context(signal);
  const plan = cache.plan(req, "chat", "t", ctx)!;
  return cache.stream(plan, ctx, up.run)[Symbol.asyncIterator]();
}
let up = upstream();

describe("coalesced stream fan-out", () => {
  it("a waiter that stops reading fails with RESOURCE_EXHAUSTED COALESCED_STREAM_LAGGING; the others complete", async () => {
    up = upstream();
    const cache = callCache();
    const req = request();
    const fast1 = collect({ [Symbol.asyncIterator]: () => stream(cache, req) });
    const stalled = stream(cache, req);
    expect((await stalled.next()).value?.event.case).toBe("start");
    const fast2 = collect({ [Symbol.asyncIterator]: () => stream(cache, req) });
    // The stalled waiter reads nothing more while the others read everything.
    for (const events of await Promise.all([fast1, fast2])) {
      expect(events[0]!.event.case).toBe("start");
      expect(text(events)).toBe(expected);
      const done = events.at(-1)!.event;
      expect(done.case).toBe("done");
    }
    expect(up.runs()).toBe(1);
    const failure = await (async () => {
      for (;;) {
        const next = await stalled.next();
        if (next.done) return undefined;
      }
    })().catch((err: unknown) => ConnectError.from(err));
    expect(failure).toBeInstanceOf(ConnectError);
    expect(failure!.code).toBe(Code.ResourceExhausted);
    expect(failure!.findDetails(ErrorInfoSchema)[0]?.reason).toBe("COALESCED_STREAM_LAGGING");
    expect(failure!.rawMessage).toMatch(/more than 16 events behind/);
  });

  it("a caller joining a stream already in flight receives every event from the start; one upstream call", async () => {
    up = upstream();
    const cache = callCache();
    const req = request();
    const first = stream(cache, req);
    const firstEvents: StreamCompleteResponse[] = [];
    for (let i = 0; i < 10; i++) firstEvents.push((await first.next()).value!);
    expect(up.produced()).toBeGreaterThanOrEqual(10);
    const late = collect({ [Symbol.asyncIterator]: () => stream(cache, req) });
    for (;;) {
      const next = await first.next();
      if (next.done) break;
      firstEvents.push(next.value);
    }
    const lateEvents = await late;
    expect(lateEvents.map((e) => e.event.case)).toEqual(firstEvents.map((e) => e.event.case));
    expect(text(lateEvents)).toBe(expected);
    const lateDone = lateEvents.at(-1)!.event;
    expect(lateDone.case === "done" && lateDone.value.route?.cacheStatus).toBe(CacheStatus.COALESCED);
    const firstDone = firstEvents.at(-1)!.event;
    expect(firstDone.case === "done" && firstDone.value.route?.cacheStatus).toBe(CacheStatus.MISS);
    expect(up.runs()).toBe(1);
    // Stored: the next caller is a hit replayed as a stream, with no upstream call.
    const replay = await collect({ [Symbol.asyncIterator]: () => stream(cache, req) });
    const replayDone = replay.at(-1)!.event;
    expect(replayDone.case === "done" && replayDone.value.route?.cacheStatus).toBe(CacheStatus.HIT);
    expect(text(replay)).toBe(expected);
    expect(up.runs()).toBe(1);
  });

  it("while every waiter is behind, the upstream stream is not read further; a waiter cancelling does not stop the other", async () => {
    up = upstream();
    const cache = callCache();
    const req = request();
    const quitter = new AbortController();
    const a = stream(cache, req, quitter.signal);
    const b = stream(cache, req);
    await a.next();
    await b.next();
    await new Promise((resolve) => setTimeout(resolve, 150));
    // Both joined after the first event: the pump stops once both are `lagEvents` behind.
    expect(up.produced()).toBeLessThanOrEqual(1 + lagEvents + 1);
    quitter.abort();
    await expect(a.next()).rejects.toThrow();
    const rest: StreamCompleteResponse[] = [];
    for (;;) {
      const next = await b.next();
      if (next.done) break;
      rest.push(next.value);
    }
    expect(text(rest)).toBe(expected);
    expect(rest.at(-1)!.event.case).toBe("done");
    expect(up.runs()).toBe(1);
  });
});
