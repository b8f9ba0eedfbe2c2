import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import { CacheStatus, ChatService, type StreamCompleteResponse } from "../../gen/sluice/v1/chat_service_pb.js";
import { type FakeUpstream, startFakeUpstream } from "../helpers/fake-upstream.js";
import { streamOf } from "../helpers/openai-wire.js";
import { grpcH2Transport, type ProtocolTransport } from "../helpers/protocol-clients.js";
import { type StartedSluice, startSluice } from "../helpers/start-sluice.js";

/**
 * Issue 16, the coalesced stream's lag bound over real sockets: a caller that stops reading
 * (its HTTP/2 window fills, the server stops pulling its events) fails with
 * RESOURCE_EXHAUSTED COALESCED_STREAM_LAGGING once more than `cache.streamLagEvents` (64)
 * behind, while the callers that read complete; one upstream call.
 */

/** Far more bytes than the socket, HTTP/2 window and stream buffers between the gateway and a stalled caller hold. */
const chunks = 1_000;
const piece = "x".repeat(1_999);

let upstream: FakeUpstream;
let gateway: StartedSluice;
let transports: ProtocolTransport[] = [];

beforeAll(async () => {
  // Paced like a (very fast) model, 1 ms apart: callers that read keep up; the stalled one cannot.
  upstream = await startFakeUpstream(() =>
    streamOf(
      Array.from({ length: chunks }, (_, i) => `${piece}${i % 10}`),
      { delayBetweenChunksMs: 1 },
    ),
  );
  gateway = await startSluice({
    providers: { up: { type: "openai", baseUrl: `${upstream.origin}/v1`, apiKey: "k" } },
    models: { chat: { deployments: [{ provider: "up", model: "m" }] } },
    cache: { ttlSeconds: 300, streamLagEvents: 64, maxEntryBytes: 4 * 1024 * 1024 },
  });
  // One connection per caller: a stalled stream's window is its own, but separate sessions keep it plain.
  transports = [grpcH2Transport(gateway.url), grpcH2Transport(gateway.url), grpcH2Transport(gateway.url)];
});

afterAll(async () => {
  for (const t of transports) t.close();
  await gateway?.close();
  await upstream?.close();
});

async function collect(events: AsyncIterable<StreamCompleteResponse>): Promise<StreamCompleteResponse[]> {
  const all: StreamCompleteResponse[] = [];
  for await (const event of events) all.push(event);
  return all;
}

describe("coalesced stream over real sockets", () => {
  it("a caller that stops reading fails with COALESCED_STREAM_LAGGING; the callers reading complete", async () => {
    const request = {
      model: "chat",
      temperature: 0,
      messages: [{ role: Role.USER, content: [{ part: { case: "text" as const, value: "lag over sockets" } }] }],
    };
    const [stalledT, fastT1, fastT2] = transports.map((t) => createClient(ChatService, t.transport));
    const stalled = stalledT!.streamComplete(request)[Symbol.asyncIterator]();
    expect((await stalled.next()).value?.event.case).toBe("start");
    // Joined while the stalled caller's call is in flight.
    const fast = [collect(fastT1!.streamComplete(request)), collect(fastT2!.streamComplete(request))];
    for (const events of await Promise.all(fast)) {
      const deltas = events.filter((e) => e.event.case === "delta");
      expect(deltas.map((e) => (e.event.value as { text: string }).text).join("").length).toBe(chunks * 2_000);
      const done = events.at(-1)!.event;
      expect(done.case === "done" && done.value.route?.cacheStatus).toBe(CacheStatus.COALESCED);
    }
    expect(upstream.requests.length).toBe(1);
    let read = 1;
    const failure = await (async () => {
      for (;;) {
        const next = await stalled.next();
        if (next.done) return undefined;
        read++;
      }
    })().catch((err: unknown) => ConnectError.from(err));
    expect(failure, `the stalled caller read all ${read} events`).toBeInstanceOf(ConnectError);
    expect(failure!.code).toBe(Code.ResourceExhausted);
    expect(failure!.findDetails(ErrorInfoSchema)[0]?.reason).toBe("COALESCED_STREAM_LAGGING");
    expect(read).toBeLessThan(chunks);
  });
});
