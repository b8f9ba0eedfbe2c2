import { describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { UpstreamError } from "../../errors/gateway-error.js";
import { classifyHttpFailure, failures, type FailureClass } from "../../errors/failure-table.js";
import {
  defaultRateLimitedBenchMs,
  defaultRefusedBenchMs,
  fixedKeyPool,
  keyFingerprint,
  RotatingKeyPool,
  sendWithKey,
  type BenchReason,
  type KeyPoolOptions,
} from "./key-pool.js";

const upstream = (failure: FailureClass, retryAfterMs?: number): UpstreamError =>
  new UpstreamError({ failure, provider: "p", message: "provider p answered", retryAfterMs });
const refused = () => upstream(failures.upstreamAuth);
const rateLimited = (retryAfterMs?: number) => upstream(failures.rateLimited, retryAfterMs);

/** A pool over keys a, b, c whose value is the key itself (tests only: real values are headers). */
function pool(init: Partial<KeyPoolOptions<string>> = {}) {
  let now = 1_000;
  let clockReads = 0;
  const benched: Array<[string, BenchReason, number]> = [];
  const prepared: string[] = [];
  const keys = new RotatingKeyPool<string>({
    keys: ["key-a", "key-b", "key-c"],
    prepare: (key) => {
      prepared.push(key);
      return key;
    },
    selection: "failover",
    now: () => {
      clockReads++;
      return now;
    },
    onBenched: (fingerprint, reason, forMs) => benched.push([fingerprint, reason, forMs]),
    ...init,
  });
  return {
    keys,
    benched,
    prepared,
    advance: (ms: number) => (now += ms),
    get clockReads() {
      return clockReads;
    },
    /** The next `n` picks' values. */
    picks: (n: number) => Array.from({ length: n }, () => keys.pick().value),
  };
}

describe("keyFingerprint", () => {
  it("is 8 hex characters of the key's SHA-256, the same every time, never part of the key", () => {
    const fingerprint = keyFingerprint("sk-test-0123456789abcdef");
    expect(fingerprint).toMatch(/^[0-9a-f]{8}$/);
    expect(keyFingerprint("sk-test-0123456789abcdef")).toBe(fingerprint);
    expect(keyFingerprint("sk-test-0123456789abcdeg")).not.toBe(fingerprint);
    expect("sk-test-0123456789abcdef").not.toContain(fingerprint);
  });
});

describe("RotatingKeyPool", () => {
  it("builds each key's value once, duplicates counted once", () => {
    const p = pool({ keys: ["key-a", "key-b", "key-a"] });
    expect(p.keys.size).toBe(2);
    expect(p.prepared).toEqual(["key-a", "key-b"]);
    p.picks(10);
    expect(p.prepared).toEqual(["key-a", "key-b"]);
  });

  it("failover: the first key serves every call, without reading the clock, while none is benched", () => {
    const p = pool();
    expect(p.picks(4)).toEqual(["key-a", "key-a", "key-a", "key-a"]);
    expect(p.clockReads).toBe(0);
  });

  it("round-robin: calls rotate over the keys", () => {
    const p = pool({ selection: "round-robin" });
    expect(p.picks(5)).toEqual(["key-a", "key-b", "key-c", "key-a", "key-b"]);
    expect(p.clockReads).toBe(0);
  });

  it("failover: a refused key is benched for a minute, then tried again", () => {
    const p = pool();
    expect(p.keys.failed(p.keys.pick(), refused())).toBe(true);
    expect(p.picks(2)).toEqual(["key-b", "key-b"]);
    p.advance(defaultRefusedBenchMs - 1);
    expect(p.picks(1)).toEqual(["key-b"]);
    p.advance(1);
    expect(p.picks(1)).toEqual(["key-a"]);
  });

  it("round-robin skips a benched key and keeps rotating over the rest", () => {
    const p = pool({ selection: "round-robin" });
    const a = p.keys.pick();
    p.keys.failed(a, rateLimited(2_000));
    expect(p.picks(4)).toEqual(["key-b", "key-c", "key-b", "key-c"]);
    p.advance(2_000);
    expect(p.picks(3)).toEqual(["key-a", "key-b", "key-c"]);
  });

  it("a 429 benches the key until its Retry-After, or a short default without one", () => {
    const p = pool();
    p.keys.failed(p.keys.pick(), rateLimited(1_500));
    const b = p.keys.pick();
    expect(b.value).toBe("key-b");
    p.keys.failed(b, rateLimited());
    expect(p.picks(1)).toEqual(["key-c"]);
    p.advance(1_500);
    expect(p.picks(1)).toEqual(["key-a"]);
    p.advance(defaultRateLimitedBenchMs - 1_500);
    expect(p.keys.pick().value).toBe("key-a");
    expect(p.benched.map(([, reason, forMs]) => [reason, forMs])).toEqual([
      ["rate-limited", 1_500],
      ["rate-limited", defaultRateLimitedBenchMs],
    ]);
  });

  it("402 and 403 bench as refusals; the reason is read even when x-should-retry made the class a copy", () => {
    const p = pool();
    p.keys.failed(p.keys.pick(), upstream(failures.upstreamBilling));
    p.keys.failed(p.keys.pick(), upstream(classifyHttpFailure({ status: 403, shouldRetry: true })));
    expect(p.picks(1)).toEqual(["key-c"]);
    expect(p.benched.map(([, reason]) => reason)).toEqual(["refused", "refused"]);
  });

  it("when every key is benched, the one whose bench ends first is used: a call is never refused untried", () => {
    const p = pool();
    p.keys.failed(p.keys.pick(), rateLimited(30_000));
    p.keys.failed(p.keys.pick(), rateLimited(2_000));
    expect(p.keys.failed(p.keys.pick(), rateLimited(10_000))).toBe(false);
    expect(p.picks(2)).toEqual(["key-b", "key-b"]);
    // It fails again: benched anew from now; c now comes back first.
    p.advance(1_000);
    p.keys.failed(p.keys.pick(), rateLimited(20_000));
    expect(p.picks(1)).toEqual(["key-c"]);
  });

  it("says a bench once, when the key leaves rotation, never per failure, and names the key by its fingerprint", () => {
    const p = pool({ keys: ["key-a", "key-b"] });
    const a = p.keys.pick();
    p.keys.failed(a, refused());
    p.keys.failed(a, refused());
    p.keys.failed(a, rateLimited(5));
    expect(p.benched).toEqual([[keyFingerprint("key-a"), "refused", defaultRefusedBenchMs]]);
  });

  it("other failures leave the key in rotation and ask for no other key", () => {
    const p = pool();
    const a = p.keys.pick();
    for (const error of [
      upstream(failures.serverError),
      upstream(failures.badRequest),
      upstream(failures.timeout),
      new ConnectError("cancelled", Code.Canceled),
      new Error("bug"),
    ]) {
      expect(p.keys.failed(a, error)).toBe(false);
    }
    expect(p.picks(1)).toEqual(["key-a"]);
    expect(p.benched).toEqual([]);
  });

  it("a key of another pool (a request sent before a key file reload) is ignored", () => {
    const old = pool();
    const p = pool();
    expect(p.keys.failed(old.keys.pick(), refused())).toBe(false);
    expect(p.picks(1)).toEqual(["key-a"]);
  });

  it("carries rate-limit benches of keys still present to the next pool; refusals end with the old file", () => {
    const p = pool();
    p.keys.failed(p.keys.pick(), refused());
    p.keys.failed(p.keys.pick(), rateLimited(10_000));
    const next = new RotatingKeyPool<string>(
      { keys: ["key-a", "key-b", "key-d"], prepare: (key) => key, selection: "failover", now: () => 1_000 },
      p.keys.carried(),
    );
    expect([next.pick().value, next.pick().value]).toEqual(["key-a", "key-a"]);
    next.failed(next.pick(), refused());
    expect(next.pick().value).toBe("key-d");
  });
});

describe("sendWithKey", () => {
  it("one key: sends once with it and lets any failure through untouched", async () => {
    const sent: string[] = [];
    const one = fixedKeyPool("only");
    await expect(
      sendWithKey(one, async (value) => {
        sent.push(value);
        throw refused();
      }),
    ).rejects.toMatchObject({ failure: failures.upstreamAuth });
    expect(sent).toEqual(["only"]);
  });

  it("a refused or rate-limited key: the same request goes again at once with the next healthy key", async () => {
    const p = pool();
    const sent: string[] = [];
    const answer = await sendWithKey(p.keys, async (key) => {
      sent.push(key);
      if (key === "key-a") throw refused();
      if (key === "key-b") throw rateLimited(1_000);
      return `answer from ${key}`;
    });
    expect(answer).toBe("answer from key-c");
    expect(sent).toEqual(["key-a", "key-b", "key-c"]);
  });

  it("each key at most once; when all were refused the last failure is the call's", async () => {
    const p = pool();
    const sent: string[] = [];
    const last = upstream(failures.upstreamAuth);
    const error = await sendWithKey(p.keys, async (key) => {
      sent.push(key);
      throw key === "key-c" ? last : refused();
    }).catch((err: unknown) => err);
    expect(error).toBe(last);
    expect(sent).toEqual(["key-a", "key-b", "key-c"]);
  });

  it("a failure that is not the key's own is not sent again here (the call runner decides)", async () => {
    const p = pool();
    const sent: string[] = [];
    const failure = upstream(failures.serverError);
    await expect(
      sendWithKey(p.keys, async (key) => {
        sent.push(key);
        throw failure;
      }),
    ).rejects.toBe(failure);
    expect(sent).toEqual(["key-a"]);
  });
});
