import { Code, ConnectError } from "@connectrpc/connect";
import type { StreamCompleteResponse } from "../../gen/sluice/v1/chat_service_pb.js";
import { failures } from "../errors/failure-table.js";
import { UpstreamError } from "../errors/gateway-error.js";

/**
 * Holds every provider to the stream contract: `start` first, exactly one `done`, last.
 * A stream that ends without `done` is a failure, never a clean end (README "The API") — even
 * if an adapter forgot to check its provider's terminal event. `open` runs on the first
 * read, as a generator's body would: a bad request fails the stream, not the call that
 * returned it. An iterator object rather than an async generator: it is held for the
 * stream's whole life, and a generator's suspended frame weighs several times as much.
 */
export function enforceStreamShape(
  open: () => { events: AsyncIterable<StreamCompleteResponse>; provider: string },
): AsyncIterableIterator<StreamCompleteResponse> {
  return new ShapedStream(open);
}

const finished: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });

class ShapedStream implements AsyncIterableIterator<StreamCompleteResponse> {
  private events: AsyncIterator<StreamCompleteResponse> | undefined = undefined;
  private provider = "";
  private started = false;
  private done = false;
  private over = false;

  constructor(private readonly open: () => { events: AsyncIterable<StreamCompleteResponse>; provider: string }) {}

  [Symbol.asyncIterator](): AsyncIterableIterator<StreamCompleteResponse> {
    return this;
  }

  // Not an async method: a suspended async frame per pending read would outweigh the rest of this object.
  next(): Promise<IteratorResult<StreamCompleteResponse>> {
    if (this.over) return Promise.resolve(finished);
    try {
      if (this.events === undefined) {
        const { events, provider } = this.open();
        this.provider = provider;
        this.events = events[Symbol.asyncIterator]();
      }
      return this.events.next().then(this.onResult, this.onError);
    } catch (err) {
      this.over = true;
      return Promise.reject(err);
    }
  }

  private readonly onResult = (
    result: IteratorResult<StreamCompleteResponse>,
  ): IteratorResult<StreamCompleteResponse> | Promise<never> => {
    if (result.done === true) {
      this.over = true;
      if (this.done) return result;
      throw new UpstreamError({
        failure: failures.streamCut,
        provider: this.provider,
        message: `provider ${this.provider} stream ended without finishing`,
      });
    }
    const broken = this.check(result.value.event.case);
    if (broken === undefined) return result;
    this.over = true;
    const error = contractBroken(this.provider, broken);
    // As a for-await loop would on a throw: the adapter is stopped (its upstream request aborted).
    return Promise.resolve(this.events!.return?.()).then(
      () => Promise.reject(error),
      () => Promise.reject(error),
    );
  };

  private readonly onError = (err: unknown): never => {
    this.over = true;
    throw err;
  };

  async return(): Promise<IteratorResult<StreamCompleteResponse>> {
    if (!this.over) {
      this.over = true;
      await this.events?.return?.();
    }
    return finished;
  }

  /** What breaks the contract in an event of this kind here, or undefined. */
  private check(kind: StreamCompleteResponse["event"]["case"]): string | undefined {
    if (this.done) return `an event (${kind}) after done`;
    if (!this.started) {
      if (kind !== "start") return `${kind ?? "an empty event"} before start`;
      this.started = true;
    } else if (kind === "start") {
      return "a second start";
    } else if (kind === "done") {
      this.done = true;
    }
    return undefined;
  }
}

function contractBroken(provider: string, what: string): ConnectError {
  return new ConnectError(`provider ${provider} adapter sent ${what}`, Code.Internal);
}
