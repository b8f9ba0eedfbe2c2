import { describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import type { StreamCompleteResponse } from "../../gen/sluice/v1/chat_service_pb.js";
import { enforceStreamShape } from "./stream-contract.js";

describe("enforceStreamShape", () => {
  type Event = StreamCompleteResponse;
  const start = { event: { case: "start", value: {} } } as Event;
  const delta = { event: { case: "delta", value: { text: "x" } } } as Event;
  const done = { event: { case: "done", value: {} } } as Event;

  /** An adapter's events, recording whether it was stopped (its upstream request aborted). */
  function adapter(events: Event[]) {
    const state = { stopped: false };
    async function* run(): AsyncGenerator<Event> {
      try {
        for (const event of events) yield event;
      } finally {
        state.stopped = true;
      }
    }
    return { state, events: run() };
  }

  async function read(events: Event[]) {
    const source = adapter(events);
    const seen: (string | undefined)[] = [];
    let error: ConnectError | undefined;
    try {
      for await (const event of enforceStreamShape(() => ({ events: source.events, provider: "p" }))) seen.push(event.event.case);
    } catch (err) {
      error = ConnectError.from(err);
    }
    return { seen, error, stopped: source.state.stopped };
  }

  it("passes a well-formed stream through unchanged", async () => {
    expect(await read([start, delta, done])).toEqual({ seen: ["start", "delta", "done"], error: undefined, stopped: true });
  });

  it("fails a stream that breaks the contract, and stops the adapter", async () => {
    for (const [events, what] of [
      [[delta], "delta before start"],
      [[start, start], "a second start"],
      [[start, done, delta], "an event (delta) after done"],
    ] as const) {
      const result = await read([...events]);
      expect(result.error?.code).toBe(Code.Internal);
      expect(result.error?.rawMessage).toBe(`provider p adapter sent ${what}`);
      expect(result.stopped).toBe(true);
    }
  });

  it("fails a stream that ends without done as a retryable cut, never a clean end", async () => {
    const result = await read([start, delta]);
    expect(result.seen).toEqual(["start", "delta"]);
    expect(result.error?.code).toBe(Code.Unavailable);
    expect(result.error?.rawMessage).toBe("provider p stream ended without finishing");
  });

  it("opens the call on the first read: a bad request fails the stream, not the call returning it", async () => {
    const stream = enforceStreamShape(() => {
      throw new ConnectError("no such model", Code.NotFound);
    });
    await expect(stream.next()).rejects.toMatchObject({ code: Code.NotFound });
    expect(await stream.next()).toEqual({ done: true, value: undefined });
  });

  it("stops the adapter when the caller leaves early", async () => {
    const source = adapter([start, delta, delta, done]);
    for await (const event of enforceStreamShape(() => ({ events: source.events, provider: "p" }))) {
      if (event.event.case === "delta") break;
    }
    expect(source.state.stopped).toBe(true);
  });
});
