import { once } from "node:events";
import { setImmediate } from "node:timers/promises";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import type { Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import { startSluice } from "../helpers/start-sluice.js";
import { startFakeUpstream, type ScriptedResponse } from "../helpers/fake-upstream.js";
import { createChatCaller, within } from "../helpers/chat-callers.js";
import { completion, error500, streamOf } from "../helpers/openai-wire.js";

const hello = { model: "chat", messages: [{ role: Role.USER, content: [{ part: { case: "text" as const, value: "Hi" } }] }] };

/** Active handles by type (sockets, timers…), to prove nothing is left behind. */
function handleCounts(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const type of process.getActiveResourcesInfo()) counts.set(type, (counts.get(type) ?? 0) + 1);
  return counts;
}

/**
 * Every TCP socket opened from now on, at either end (callers, the gateway, its upstream
 * pools, the fakes): `allClosed()` resolves once each has emitted "close", so the leak
 * check below runs when the last one is gone, not after a guessed pause.
 */
function watchSockets(): { allClosed(): Promise<void>; stop(): void } {
  const sockets = new Set<Socket>();
  const onSocket = (message: unknown): void => {
    sockets.add((message as { socket: Socket }).socket);
  };
  subscribe("net.client.socket", onSocket);
  subscribe("net.server.socket", onSocket);
  return {
    async allClosed() {
      await Promise.all([...sockets].filter((socket) => !socket.closed).map((socket) => once(socket, "close")));
    },
    stop() {
      unsubscribe("net.client.socket", onSocket);
      unsubscribe("net.server.socket", onSocket);
    },
  };
}

describe("soak: mixed faults under concurrency", () => {
  it("gives every call exactly one terminal status, keeps serving, and leaves no handles behind", async () => {
    const before = handleCounts();
    const sockets = watchSockets();
    // Seeded, so a failure replays the same way.
    let seed = 42;
    const random = (): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    // No fault waits on a timer of the fake's own: a slow answer is one that never ends (a
    // hedge or a's per-attempt timeouts end it), so any handle left at the end is Sluice's.
    const faults: Array<() => ScriptedResponse> = [
      () => completion("ok"),
      () => error500,
      () => ({ ...error500, status: 429, headers: { "content-type": "application/json", "retry-after-ms": "20" } }),
      () => ({ resetBeforeHeaders: true }),
      () => ({ ...completion("stalled"), stallAfterChunks: true }),
      () => ({ ...error500, status: 529, headers: { "content-type": "application/json", "x-should-retry": "true" } }),
    ];
    const streamFaults: Array<() => ScriptedResponse> = [
      () => streamOf(["a", "b", "c"]),
      () => streamOf(["cut"], {}, false),
      () => ({ ...streamOf(["x", "y"]), resetAfterChunks: 2 }),
      () => error500,
      () => ({ ...streamOf(["stalled"], {}, false), stallAfterChunks: true }),
    ];
    const a = await startFakeUpstream((req) => {
      const isStream = (req.body as { stream?: boolean } | undefined)?.stream === true;
      const pool = isStream ? streamFaults : faults;
      return pool[Math.floor(random() * pool.length)]!();
    });
    const b = await startFakeUpstream((req) =>
      (req.body as { stream?: boolean } | undefined)?.stream === true ? streamOf(["from", "b"]) : completion("from b"),
    );
    const sluice = await startSluice({
      providers: { a: { type: "openai", baseUrl: `${a.origin}/v1` }, b: { type: "openai", baseUrl: `${b.origin}/v1` } },
      models: {
        chat: {
          // Limits high enough never to bite: they are here to prove every attempt gives its slot back.
          deployments: [
            // A stall ends at firstTokenMs / idleMs; totalMs never fires here, so an attempt
            // timer left behind would show in the handle check at the end.
            {
              provider: "a",
              model: "model-a",
              maxInFlight: 10_000,
              timeouts: { firstTokenMs: 300, idleMs: 200, totalMs: 60_000 },
            },
            { provider: "b", model: "model-b", weight: 1, maxInFlight: 10_000 },
          ],
          strategy: "weighted",
          retry: { maxAttempts: 2, initialBackoffMs: 5, maxBackoffMs: 20 },
          // Hedge races (and their losers' clean-up) run inside the soak too.
          hedge: { delayMs: 25, percentile: 95 },
        },
      },
    });
    const connect = createChatCaller("connect-json-h1", sluice.url);
    const grpc = createChatCaller("grpc-js-h2c", sluice.url);
    const allowed = new Set([Code.Unavailable, Code.ResourceExhausted, Code.Internal]);
    try {
      const calls: Array<Promise<"ok" | Code>> = [];
      for (let i = 0; i < 300; i++) {
        const caller = i % 3 === 0 ? grpc : connect;
        if (i % 2 === 0) {
          calls.push(
            caller.complete(hello).then(
              () => "ok" as const,
              (err: { code: Code }) => err.code,
            ),
          );
        } else {
          calls.push(
            caller.stream(hello).then(({ events, error }) => {
              if (error !== undefined) {
                // An error status is terminal: never after a done event.
                expect(events.some((e) => e.event.case === "done")).toBe(false);
                return error.code;
              }
              expect(events.at(-1)?.event.case).toBe("done");
              expect(events.filter((e) => e.event.case === "done")).toHaveLength(1);
              return "ok" as const;
            }),
          );
        }
      }
      const outcomes = await Promise.all(calls);
      expect(outcomes).toHaveLength(300);
      for (const outcome of outcomes) if (outcome !== "ok") expect(allowed.has(outcome)).toBe(true);
      // Fail-over to b makes most calls succeed despite a's faults.
      expect(outcomes.filter((o) => o === "ok").length).toBeGreaterThan(200);
      // Still healthy.
      const after = await connect.complete(hello);
      expect(after.message?.content[0]?.part.value).toMatch(/ok|from b/);
      expect(sluice.server.inFlight).toBe(0);
      // Every attempt — won, lost, hedged, failed, timed out, cancelled — released its slot.
      expect(sluice.sluice.limiter.counts()).toEqual({ "a/model-a": 0, "b/model-b": 0 });
    } finally {
      connect.close();
      grpc.close();
      await sluice.close();
      await Promise.all([a.close(), b.close()]);
    }
    // Nothing left: no sockets, no timers beyond what the test runner had before. Closing
    // sockets finish their shutdown on later turns of the loop: wait for each one's "close".
    await within(sockets.allClosed(), 5_000, "every socket of the soak closed");
    sockets.stop();
    // A closed server's handle goes in libuv's close phase, after its "close" event: one
    // turn of the loop past it (the second setImmediate runs after that phase), no timer.
    await setImmediate();
    await setImmediate();
    const leftover = handleCounts();
    for (const [type, count] of leftover) {
      expect({ type, count: count }).toEqual({ type, count: Math.min(count, before.get(type) ?? 0) });
    }
  });
});
