/**
 * An exact sliding window: what was admitted in the last `windowMs`, entry by entry, so any
 * window of that length holds at most the limit (a fixed-window counter lets through twice
 * the limit across a boundary; GCRA with a burst of the whole limit does too). Entries are
 * kept in admission order, so the expired ones are always at the front.
 */
export class SlidingWindow {
  private readonly at: number[] = [];
  private readonly cost: number[] = [];
  private readonly ids: string[] = [];
  /** Index of the first live entry: expired entries are dropped in batches, not shifted one by one. */
  private head = 0;
  total = 0;

  /** Drops what left the window by `now`. */
  prune(now: number, windowMs: number): void {
    const oldest = now - windowMs;
    let head = this.head;
    while (head < this.at.length && this.at[head]! <= oldest) {
      this.total -= this.cost[head]!;
      head++;
    }
    this.head = head;
    // Compact once the dead prefix outweighs the live part.
    if (head > 64 && head * 2 > this.at.length) {
      this.at.splice(0, head);
      this.cost.splice(0, head);
      this.ids.splice(0, head);
      this.head = 0;
    }
  }

  get empty(): boolean {
    return this.head >= this.at.length;
  }

  /** Milliseconds until enough has left the window for `cost` more to fit under `limit` (call after prune). */
  waitFor(cost: number, limit: number, now: number, windowMs: number): number {
    let freed = 0;
    for (let i = this.head; i < this.at.length; i++) {
      freed += this.cost[i]!;
      if (this.total - freed + cost <= limit) return Math.max(1, this.at[i]! + windowMs - now);
    }
    return windowMs;
  }

  /** Milliseconds until everything now in the window has left it. */
  resetMs(now: number, windowMs: number): number {
    return this.empty ? 0 : Math.max(0, this.at[this.at.length - 1]! + windowMs - now);
  }

  add(id: string, cost: number, now: number): void {
    this.at.push(now);
    this.cost.push(cost);
    this.ids.push(id);
    this.total += cost;
  }

  /**
   * Replaces the cost of entry `id` with what the call used. An entry already out of the
   * window counts the excess from now (the call used more than it reserved, late).
   */
  settle(id: string, reserved: number, cost: number, now: number): void {
    for (let i = this.at.length - 1; i >= this.head; i--) {
      if (this.ids[i] === id) {
        this.total += cost - this.cost[i]!;
        this.cost[i] = cost;
        return;
      }
    }
    if (cost > reserved) this.add(id, cost - reserved, now);
  }
}
