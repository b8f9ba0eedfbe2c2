/** One server-sent event (WHATWG HTML §9.2 "event stream interpretation"). */
export interface SseEvent {
  /** The `event:` field; "message" when absent. */
  readonly event: string;
  /** The `data:` lines joined with "\n". */
  readonly data: string;
  /** The `id:` field, or undefined. */
  readonly id: string | undefined;
}

/**
 * An incremental SSE parser. Feed it decoded text as it arrives, in chunks cut anywhere
 * (inside a field, between CR and LF, inside a multi-byte character — the decoder
 * handles that); it returns the events completed by each chunk. Comments (`:` lines),
 * `retry:` and unknown fields are ignored; an event without data is not dispatched.
 */
export class SseParser {
  private buffer = "";
  /** The previous chunk ended with CR: a leading LF in the next one belongs to it. */
  private pendingCR = false;
  private eventType = "";
  private data = "";
  private hasData = false;
  private lastId: string | undefined = undefined;
  private first = true;

  /** Parses one chunk of text; returns the events it completed (often none). */
  push(chunk: string): SseEvent[] {
    const events: SseEvent[] = [];
    // An empty chunk must not clear `pendingCR`: the LF that completes a CRLF may still come.
    if (chunk.length === 0) return events;
    let text = chunk;
    if (this.first) {
      this.first = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    if (this.pendingCR && text.charCodeAt(0) === 10) text = text.slice(1);
    this.pendingCR = false;
    const buffer = this.buffer.length > 0 ? this.buffer + text : text;
    const length = buffer.length;
    let start = 0;
    // The next CR and LF positions are searched once and reused until passed: searching
    // both on every line made a large chunk of LF-only lines cost O(lines × chunk).
    let lf = buffer.indexOf("\n");
    let cr = buffer.indexOf("\r");
    for (;;) {
      if (lf !== -1 && lf < start) lf = buffer.indexOf("\n", start);
      if (cr !== -1 && cr < start) cr = buffer.indexOf("\r", start);
      let end: number;
      let next: number;
      if (cr !== -1 && (lf === -1 || cr < lf)) {
        end = cr;
        if (cr + 1 < length) {
          next = buffer.charCodeAt(cr + 1) === 10 ? cr + 2 : cr + 1;
        } else {
          // CR is the chunk's last character: an LF starting the next chunk is part of it
          // (sse-parser.test.ts "CR at chunk end, LF in the next").
          next = cr + 1;
          this.pendingCR = true;
        }
      } else if (lf !== -1) {
        end = lf;
        next = lf + 1;
      } else {
        break;
      }
      this.line(buffer, start, end, events);
      start = next;
    }
    this.buffer = start === 0 ? buffer : buffer.slice(start);
    return events;
  }

  private line(buffer: string, start: number, end: number, events: SseEvent[]): void {
    if (start === end) {
      this.dispatch(events);
      return;
    }
    if (buffer.charCodeAt(start) === 58 /* ':' comment */) return;
    const colon = buffer.indexOf(":", start);
    let field: string;
    let value: string;
    if (colon === -1 || colon > end) {
      field = buffer.slice(start, end);
      value = "";
    } else {
      field = buffer.slice(start, colon);
      let valueStart = colon + 1;
      if (buffer.charCodeAt(valueStart) === 32 && valueStart < end) valueStart++;
      value = buffer.slice(valueStart, end);
    }
    switch (field) {
      case "data":
        this.data = this.hasData ? `${this.data}\n${value}` : value;
        this.hasData = true;
        break;
      case "event":
        this.eventType = value;
        break;
      case "id":
        if (!value.includes("\0")) this.lastId = value;
        break;
      default:
        // `retry:` and unknown fields are ignored, as the standard says.
        break;
    }
  }

  private dispatch(events: SseEvent[]): void {
    if (this.hasData) {
      events.push({ event: this.eventType || "message", data: this.data, id: this.lastId });
    }
    this.eventType = "";
    this.data = "";
    this.hasData = false;
  }
}

/**
 * Parses a byte stream into SSE events, yielding each as soon as its blank line arrives.
 * A trailing event without its blank line is dropped (the standard's rule): whether a
 * stream ended cleanly is for the caller to judge from the provider's terminal event.
 * An iterator object, not an async generator: it is held for the stream's whole life and
 * a generator's suspended frame weighs several times as much.
 */
export function parseSseStream(body: AsyncIterable<Uint8Array | string>): AsyncIterableIterator<SseEvent> {
  return new SseEventStream(body);
}

const finished: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });

class SseEventStream implements AsyncIterableIterator<SseEvent> {
  // ignoreBOM: the decoder keeps a leading BOM so that the parser strips exactly one, as
  // the standard says, whether it is fed bytes or strings.
  private readonly decoder = new TextDecoder("utf-8", { ignoreBOM: true });
  private readonly parser = new SseParser();
  private inner: AsyncIterator<Uint8Array | string> | undefined = undefined;
  /** Events parsed but not yet handed out. */
  private events: SseEvent[] = [];
  private nextEvent = 0;
  private over = false;

  constructor(private readonly body: AsyncIterable<Uint8Array | string>) {}

  [Symbol.asyncIterator](): AsyncIterableIterator<SseEvent> {
    return this;
  }

  next(): Promise<IteratorResult<SseEvent>> {
    if (this.nextEvent < this.events.length) return Promise.resolve({ done: false, value: this.events[this.nextEvent++]! });
    if (this.over) return Promise.resolve(finished);
    try {
      this.inner ??= this.body[Symbol.asyncIterator]();
      return this.inner.next().then(this.onChunk, this.onError);
    } catch (err) {
      this.over = true;
      return Promise.reject(err);
    }
  }

  async return(): Promise<IteratorResult<SseEvent>> {
    if (!this.over) {
      this.over = true;
      this.events = [];
      await this.inner?.return?.();
    }
    return finished;
  }

  private readonly onChunk = (
    chunk: IteratorResult<Uint8Array | string>,
  ): Promise<IteratorResult<SseEvent>> | IteratorResult<SseEvent> => {
    if (chunk.done === true) {
      this.over = true;
      const rest = this.decoder.decode();
      if (rest.length > 0) this.take(this.parser.push(rest));
    } else {
      const text = typeof chunk.value === "string" ? chunk.value : this.decoder.decode(chunk.value, { stream: true });
      if (text.length > 0) this.take(this.parser.push(text));
    }
    // A chunk that completed no event: read on.
    return this.next();
  };

  private readonly onError = (err: unknown): never => {
    this.over = true;
    throw err;
  };

  private take(events: SseEvent[]): void {
    this.events = events;
    this.nextEvent = 0;
  }
}
