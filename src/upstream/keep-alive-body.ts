/** The most a finished stream's leftover is read for: past it, closing the socket is cheaper. */
const maxDrainBytes = 64 * 1024;

/** A response body: iterable, and destroyable to abort the request. */
export interface DestroyableBody extends AsyncIterable<Uint8Array> {
  destroy(error?: Error): unknown;
}

/**
 * Wraps a streaming response body for one consumer that may stop early. Stopping before
 * the answer is complete destroys the body, which aborts the upstream request at once
 * (the caller is gone: no tokens paid for nobody). Stopping after it is complete — at
 * `[DONE]`, where the HTTP response has usually but not always ended too — reads the rest
 * in the background instead, so undici returns the keep-alive socket to its pool rather
 * than closing it (openai-provider.test.ts "reuses the connection"). The drain never
 * delays the consumer; a server that stalls after its terminal event is cut off after
 * `maxDrainBytes`, by the pool's body idle timeout, or when the provider closes (bodies
 * being drained sit in `draining` until then).
 */
export function keepAliveBody(
  body: DestroyableBody,
  isComplete: () => boolean,
  draining: Set<DestroyableBody>,
): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
      const inner = body[Symbol.asyncIterator]();
      return {
        next: () => inner.next(),
        async return(): Promise<IteratorResult<Uint8Array>> {
          if (isComplete()) void drain(body, inner, draining);
          else await inner.return?.();
          return { done: true, value: undefined };
        },
      };
    },
  };
}

async function drain(body: DestroyableBody, inner: AsyncIterator<Uint8Array>, draining: Set<DestroyableBody>): Promise<void> {
  draining.add(body);
  try {
    let read = 0;
    for (;;) {
      const result = await inner.next();
      if (result.done === true) return;
      read += result.value.byteLength;
      if (read > maxDrainBytes) break;
    }
    body.destroy();
  } catch {
    // The answer was already delivered whole; what happens to the leftover is no one's error.
  } finally {
    draining.delete(body);
  }
}
