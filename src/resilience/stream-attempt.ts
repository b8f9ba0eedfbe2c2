import { Code, ConnectError } from "@connectrpc/connect";
import type { CompleteRequest, StreamCompleteResponse } from "../../gen/sluice/v1/chat_service_pb.js";
import type { Deployment } from "../routing/model-catalog.js";
import type { AttemptSignal } from "./attempt-signal.js";

/** A stream attempt that produced its first token: nothing has reached the caller yet. */
export interface OpenedStream {
  /** `start` and the first event after it, held back until the attempt is chosen. */
  readonly held: readonly StreamCompleteResponse[];
  readonly iterator: AsyncIterator<StreamCompleteResponse>;
  /** Milliseconds from the attempt's start to its first token. */
  readonly ttftMs: number;
}

/**
 * Starts a stream attempt and reads it up to its first token (the first event after
 * `start`). Until then a failure can still be retried or failed over — the caller has
 * seen nothing — so `start` is held back with it. On failure the attempt is torn down
 * (the adapter's iterator returned, which aborts its upstream request) and the error
 * rethrown; the caller owns the breaker ticket and strategy hooks.
 */
export async function openStream(
  deployment: Deployment,
  request: CompleteRequest,
  attemptSignal: AttemptSignal,
  traceparent: string | undefined,
): Promise<OpenedStream> {
  const started = performance.now();
  const events = deployment.provider.stream(request, {
    model: deployment.model,
    signal: attemptSignal.signal,
    defaultMaxOutputTokens: deployment.maxOutputTokens,
    traceparent,
  });
  const iterator = events[Symbol.asyncIterator]();
  try {
    const first = await iterator.next();
    if (first.done) throw new ConnectError(`provider ${deployment.provider.name} stream ended before it started`, Code.Internal);
    if (first.value.event.case !== "start") {
      throw new ConnectError(
        `provider ${deployment.provider.name} adapter sent ${first.value.event.case ?? "an empty event"} before start`,
        Code.Internal,
      );
    }
    const second = await iterator.next();
    if (second.done) {
      throw new ConnectError(`provider ${deployment.provider.name} stream ended after start`, Code.Unavailable);
    }
    attemptSignal.firstEventArrived();
    return { held: [first.value, second.value], iterator, ttftMs: performance.now() - started };
  } catch (err) {
    await iterator.return?.(undefined).catch(() => undefined);
    throw attemptSignal.timedOut ?? err;
  }
}
