/** Why a call left the queue without starting. */
export type QueueRefusal = "queue_timeout" | "draining";

/** A call waiting for a slot: what to do when it gets one, or when it is refused. */
export interface QueueWaiter {
  /** A slot is free: start the call (the server counts it). */
  start(): void;
  /** Refused without starting: after `maxWaitMs` in the queue, or at drain. */
  refuse(reason: QueueRefusal): void;
}

/** A waiting call's place in the queue. */
export interface QueuedCall {
  /** Its caller went away: out of the queue at once, neither started nor refused. Idempotent; a no-op once it left. */
  leave(): void;
}

export interface CallQueueOptions {
  /** `server.queue.size`: calls that may wait at once; 0 is no queue (every `enqueue` answers undefined). */
  readonly size: number;
  /** `server.queue.maxWaitMs`: a call waiting this long is refused (`queue_timeout`). */
  readonly maxWaitMs: number;
}

/**
 * Calls waiting for a slot under `server.maxConcurrentCalls`: a short bounded FIFO the
 * server only touches at the cap. The oldest waiter starts when a call ends (`admit`); one
 * that waited `maxWaitMs` is refused; one whose caller leaves is dropped. Nothing of a
 * waiter's request is read meanwhile (the server keeps it unread: backpressure).
 */
export interface CallQueue {
  /** Calls waiting now. */
  readonly length: number;
  /** Queues a call; undefined when the queue is full (or has no room at all: size 0). */
  enqueue(waiter: QueueWaiter): QueuedCall | undefined;
  /** Starts the oldest waiter; false when none waits. */
  admit(): boolean;
  /** Refuses every waiter, oldest first (`draining`). */
  refuseAll(): void;
}

/** One waiter: a doubly linked node, so leaving costs O(1) wherever it stands. */
interface Node extends QueuedCall {
  readonly waiter: QueueWaiter;
  prev: Node | undefined;
  next: Node | undefined;
  timer: NodeJS.Timeout | undefined;
  queued: boolean;
}

export function createCallQueue(options: CallQueueOptions): CallQueue {
  const { size, maxWaitMs } = options;
  let head: Node | undefined;
  let tail: Node | undefined;
  let length = 0;

  function unlink(node: Node): void {
    if (!node.queued) return;
    node.queued = false;
    clearTimeout(node.timer);
    node.timer = undefined;
    if (node.prev === undefined) head = node.next;
    else node.prev.next = node.next;
    if (node.next === undefined) tail = node.prev;
    else node.next.prev = node.prev;
    node.prev = node.next = undefined;
    length--;
  }

  return {
    get length() {
      return length;
    },

    enqueue(waiter) {
      if (length >= size) return undefined;
      const node: Node = {
        waiter,
        prev: tail,
        next: undefined,
        timer: undefined,
        queued: true,
        leave: () => unlink(node),
      };
      // One timer per waiter: node keeps timers of one duration in one list, so arming and
      // clearing them is O(1); the queue is short and only used at the cap.
      node.timer = setTimeout(() => {
        if (!node.queued) return;
        unlink(node);
        waiter.refuse("queue_timeout");
      }, maxWaitMs);
      if (tail === undefined) head = node;
      else tail.next = node;
      tail = node;
      length++;
      return node;
    },

    admit() {
      const node = head;
      if (node === undefined) return false;
      unlink(node);
      node.waiter.start();
      return true;
    },

    refuseAll() {
      while (head !== undefined) {
        const node = head;
        unlink(node);
        node.waiter.refuse("draining");
      }
    },
  };
}
