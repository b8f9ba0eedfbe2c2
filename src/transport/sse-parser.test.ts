import { describe, expect, it } from "vitest";
import { parseSseStream, SseParser, type SseEvent } from "./sse-parser.js";

const encoder = new TextEncoder();

async function* fromChunks<T>(chunks: readonly T[]): AsyncGenerator<T> {
  for (const chunk of chunks) yield chunk;
}

async function collect(chunks: ReadonlyArray<Uint8Array | string>): Promise<SseEvent[]> {
  const events: SseEvent[] = [];
  for await (const event of parseSseStream(fromChunks(chunks))) events.push(event);
  return events;
}

function ev(data: string, event = "message", id: string | undefined = undefined): SseEvent {
  return { event, data, id };
}

/** Every way of cutting `bytes` into two pieces. */
function* twoWaySplits(bytes: Uint8Array): Generator<Uint8Array[]> {
  for (let i = 0; i <= bytes.length; i++) yield [bytes.subarray(0, i), bytes.subarray(i)];
}

// One transcript exercising everything the parser must get right at once: a BOM, a
// comment, CRLF / CR / LF endings, multi-line data, an `event:` and `id:`, whitespace inside
// JSON, multi-byte characters (2, 3 and 4 bytes), and an event with no data.
const mixed =
  "\uFEFF: keep-alive comment\r\n" +
  'data: {"a" :  1 ,\r\ndata:  "b": "héllo"}\r\n\r\n' +
  "event: error\rid: 7\rdata: 日本語 🌍\r\r" +
  "event: ping\n\n" +
  "data:[DONE]\n\n";
const mixedEvents = [ev('{"a" :  1 ,\n "b": "héllo"}'), ev("日本語 🌍", "error", "7"), ev("[DONE]", "message", "7")];

describe("SseParser / parseSseStream", () => {
  it("parses LF, CRLF and CR line endings alike", async () => {
    for (const eol of ["\n", "\r\n", "\r"]) {
      const text = `data: one${eol}${eol}event: x${eol}data: two${eol}data: three${eol}${eol}`;
      expect(await collect([text]), JSON.stringify(eol)).toEqual([ev("one"), ev("two\nthree", "x")]);
    }
  });

  it("yields the same events however the bytes are cut in two", async () => {
    const bytes = encoder.encode(mixed);
    expect(await collect([bytes])).toEqual(mixedEvents);
    for (const chunks of twoWaySplits(bytes)) {
      expect(await collect(chunks), `cut at ${chunks[0]!.length}`).toEqual(mixedEvents);
    }
  });

  it("yields the same events when fed one byte at a time", async () => {
    const bytes = encoder.encode(mixed);
    const single = Array.from(bytes, (_, i) => bytes.subarray(i, i + 1));
    expect(await collect(single)).toEqual(mixedEvents);
  });

  it("yields the same events when fed strings cut at every offset (the parser alone)", () => {
    for (let i = 0; i <= mixed.length; i++) {
      const parser = new SseParser();
      const events = [...parser.push(mixed.slice(0, i)), ...parser.push(mixed.slice(i))];
      expect(events, `cut at ${i}`).toEqual(mixedEvents);
    }
  });

  it("joins a CR at a chunk's end with the LF starting the next chunk", async () => {
    // Were the LF taken for a second line ending, "a" would be dispatched on its own (a
    // blank line) and "b" would become a separate event.
    expect(await collect(["data: a\r", "\ndata: b\r\n\r\n"])).toEqual([ev("a\nb")]);
    // An empty chunk in between must not forget the pending CR.
    const parser = new SseParser();
    expect([...parser.push("data: a\r"), ...parser.push(""), ...parser.push("\ndata: b\r\n\r\n")]).toEqual([ev("a\nb")]);
  });

  it("treats a CR at a chunk's end followed by a non-LF as a complete line ending", async () => {
    expect(await collect(["data: a\r", "\rdata: b\n\n"])).toEqual([ev("a"), ev("b")]);
  });

  it("ignores comments, retry and unknown fields", async () => {
    const text = ": hello\n\ndata: x\n: inside\nretry: 1000\nfoo: bar\ndata: y\n\n:\n\n";
    expect(await collect([text])).toEqual([ev("x\ny")]);
  });

  it("dispatches no event for a block without data, and resets the event type after each dispatch", async () => {
    expect(await collect(["event: ping\n\nevent: error\ndata: e\n\ndata: m\n\n"])).toEqual([ev("e", "error"), ev("m")]);
  });

  it("removes exactly one space after the colon and keeps whitespace inside the value", async () => {
    const text = 'data:  {"k" : [ 1 , 2 ] }  \n\ndata:tight\n\ndata\n\n';
    const events = await collect([text]);
    expect(events).toEqual([ev(' {"k" : [ 1 , 2 ] }  '), ev("tight"), ev("")]);
    expect(JSON.parse(events[0]!.data)).toEqual({ k: [1, 2] });
  });

  it("strips one leading BOM, also when its bytes are split across chunks", async () => {
    const bom = [0xef, 0xbb, 0xbf];
    const body = encoder.encode("data: x\n\n");
    expect(await collect([Uint8Array.of(bom[0]!), Uint8Array.of(bom[1]!, bom[2]!), body])).toEqual([ev("x")]);
    // Only the first BOM is a BOM; a second one is data (here: an unknown field name).
    expect(await collect([Uint8Array.of(...bom, ...bom), encoder.encode("data: y\n\n")])).toEqual([]);
    expect(await collect([Uint8Array.of(...bom, ...bom), encoder.encode("\ndata: y\n\n")])).toEqual([ev("y")]);
  });

  it("decodes multi-byte UTF-8 characters split across chunks", async () => {
    const text = "data: é✓🌍\n\n";
    const bytes = encoder.encode(text);
    expect(bytes.length).toBe(text.length + 1 + 2 + 2); // é=2, ✓=3, 🌍=4 bytes (2 UTF-16 units)
    for (const chunks of twoWaySplits(bytes)) {
      expect(await collect(chunks)).toEqual([ev("é✓🌍")]);
    }
  });

  it("drops a trailing event that has no blank line", async () => {
    expect(await collect(["data: a\n\ndata: b\n"])).toEqual([ev("a")]);
    expect(await collect(["data: a\n\ndata: b"])).toEqual([ev("a")]);
  });

  it("keeps the last event id across events", async () => {
    expect(await collect(["id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n"])).toEqual([
      ev("a", "message", "1"),
      ev("b", "message", "1"),
      ev("c", "message", ""),
    ]);
  });

  it("parses a large chunk of many lines whole", async () => {
    // 200,000 events (3 MB) in one chunk. Re-searching for CR from every line once made
    // this quadratic (~4 s); timing is for bench/, this checks every event comes out.
    const text = 'data: {"x":1}\n\n'.repeat(200_000);
    const events = new SseParser().push(text);
    expect(events).toHaveLength(200_000);
    expect(events[199_999]).toEqual(ev('{"x":1}', "message", undefined));
  });
});
