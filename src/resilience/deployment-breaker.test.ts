import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { UpstreamError } from "../errors/gateway-error.js";
import { failures, type FailureClass } from "../errors/failure-table.js";
import {
  createDeploymentBreaker,
  type BreakerState,
  type DeploymentBreaker,
  type DeploymentBreakerOptions,
} from "./deployment-breaker.js";

const options: DeploymentBreakerOptions = {
  errorThresholdPercentage: 50,
  volumeThreshold: 4,
  rollingWindowMs: 10_000,
  resetTimeoutMs: 30_000,
};

function upstream(failure: FailureClass): UpstreamError {
  return new UpstreamError({ failure, provider: "openai", message: `provider openai: ${failure.reason}` });
}

/** opossum settles through a few promise hops; let them run. */
async function settled(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

/** `times` attempts that fail with `err`, each admitted by its own ticket (none when the breaker refuses). */
async function fail(breaker: DeploymentBreaker, err: unknown, times = 1): Promise<void> {
  for (let i = 0; i < times; i++) {
    breaker.begin()?.failure(err);
    await settled();
  }
}

async function succeed(breaker: DeploymentBreaker, times = 1): Promise<void> {
  for (let i = 0; i < times; i++) {
    breaker.begin()?.success();
    await settled();
  }
}

describe("createDeploymentBreaker", () => {
  let breaker: DeploymentBreaker;
  let changes: BreakerState[];

  beforeEach(() => {
    vi.useFakeTimers();
    changes = [];
    breaker = createDeploymentBreaker("openai/gpt-4o", options, { onStateChange: (_, s) => changes.push(s) });
  });
  afterEach(() => {
    breaker.shutdown();
    vi.useRealTimers();
  });

  async function open(): Promise<void> {
    await fail(breaker, upstream(failures.serverError), options.volumeThreshold);
    expect(breaker.state).toBe("open");
  }

  it("opens only once the minimum volume is seen and the error rate is over the threshold", async () => {
    await fail(breaker, upstream(failures.serverError), 3);
    expect(breaker.state).toBe("closed"); // 3 calls < volumeThreshold 4
    await succeed(breaker);
    expect(breaker.state).toBe("closed"); // 3/4 failed, but opossum checks on failures only
    await succeed(breaker, 2);
    await fail(breaker, upstream(failures.connection));
    expect(breaker.state).toBe("open"); // 4/7 = 57% > 50%
    expect(changes).toEqual(["open"]);
  });

  it("stays closed at exactly the threshold", async () => {
    await succeed(breaker, 2);
    await fail(breaker, upstream(failures.timeout), 2); // 2/4 = 50%, not over
    expect(breaker.state).toBe("closed");
  });

  it("never opens on failures that are not the deployment's fault (400, context length, 429)", async () => {
    await fail(breaker, upstream(failures.badRequest), 20);
    await fail(breaker, upstream(failures.contextLength), 20);
    await fail(breaker, upstream(failures.rateLimited), 20);
    expect(breaker.state).toBe("closed");
    // They count as answers: 3 faults among 63 calls stay under the threshold.
    await fail(breaker, upstream(failures.serverError), 3);
    expect(breaker.state).toBe("closed");
  });

  it("when open, admits no attempt: the deployment is skipped without being called", async () => {
    await open();
    expect(breaker.isOpen()).toBe(true);
    expect(breaker.begin()).toBeUndefined();
    expect(breaker.begin()).toBeUndefined();
    expect(breaker.state).toBe("open");
  });

  it("goes half-open after resetTimeoutMs and lets exactly one probe through", async () => {
    await open();
    vi.advanceTimersByTime(options.resetTimeoutMs - 1);
    expect(breaker.state).toBe("open");
    vi.advanceTimersByTime(1);
    expect(breaker.state).toBe("half-open");
    expect(breaker.isOpen()).toBe(false);

    const probe = breaker.begin();
    expect(probe).toBeDefined();
    expect(breaker.isOpen()).toBe(true); // the probe is out: everyone else skips
    expect(breaker.begin()).toBeUndefined();
    probe?.release();
  });

  it("closes when the probe succeeds", async () => {
    await open();
    vi.advanceTimersByTime(options.resetTimeoutMs);
    await succeed(breaker);
    expect(breaker.state).toBe("closed");
    expect(breaker.begin()).toBeDefined();
    expect(changes).toEqual(["open", "half-open", "closed"]);
  });

  it("re-opens when the probe fails, and probes again after another resetTimeoutMs", async () => {
    await open();
    vi.advanceTimersByTime(options.resetTimeoutMs);
    await fail(breaker, upstream(failures.overloaded));
    expect(breaker.state).toBe("open");
    vi.advanceTimersByTime(options.resetTimeoutMs);
    expect(breaker.state).toBe("half-open");
    expect(changes).toEqual(["open", "half-open", "open", "half-open"]);
  });

  it("closes when the probe gets an answer that is not the deployment's fault (a 400)", async () => {
    await open();
    vi.advanceTimersByTime(options.resetTimeoutMs);
    await fail(breaker, upstream(failures.badRequest));
    expect(breaker.state).toBe("closed");
  });

  it("close starts a clean window: failures from before the open cannot re-open it", async () => {
    breaker.shutdown();
    breaker = createDeploymentBreaker("openai/gpt-4o", { ...options, resetTimeoutMs: 1_000 });
    await open();
    vi.advanceTimersByTime(1_000); // well inside the 10 s window
    await succeed(breaker);
    expect(breaker.state).toBe("closed");
    await fail(breaker, upstream(failures.serverError));
    expect(breaker.state).toBe("closed");
  });

  describe("tickets (streams)", () => {
    it("success and failure settle later; only deployment faults count", async () => {
      const tickets = Array.from({ length: 4 }, () => breaker.begin());
      expect(breaker.state).toBe("closed"); // in flight: nothing recorded yet
      for (const t of tickets) t?.failure(upstream(failures.streamCut));
      await settled();
      expect(breaker.state).toBe("open");
    });

    it("a settled ticket ignores later calls", async () => {
      const t = breaker.begin();
      t?.success();
      for (let i = 0; i < 10; i++) t?.failure(upstream(failures.serverError));
      await settled();
      await fail(breaker, upstream(failures.serverError), 2);
      expect(breaker.state).toBe("closed"); // 3 recorded calls: the 10 extra failures were ignored
      await fail(breaker, upstream(failures.serverError));
      expect(breaker.state).toBe("open"); // 3/4 failed
    });

    it("release records nothing: released calls neither count nor dilute the error rate", async () => {
      await fail(breaker, upstream(failures.serverError), 3);
      for (let i = 0; i < 10; i++) breaker.begin()?.release();
      await settled();
      expect(breaker.state).toBe("closed");
      await fail(breaker, upstream(failures.serverError));
      expect(breaker.state).toBe("open"); // 4/4, not 4/14
    });

    it("the probe ticket closes on success and re-opens on failure", async () => {
      await open();
      vi.advanceTimersByTime(options.resetTimeoutMs);
      breaker.begin()?.failure(upstream(failures.connection));
      await settled();
      expect(breaker.state).toBe("open");
      vi.advanceTimersByTime(options.resetTimeoutMs);
      breaker.begin()?.success();
      await settled();
      expect(breaker.state).toBe("closed");
    });

    it("a ticket begun before the breaker opened is dropped when it settles", async () => {
      const late = breaker.begin();
      await open();
      vi.advanceTimersByTime(options.resetTimeoutMs);
      const probe = breaker.begin();
      late?.success(); // must not be taken for the probe's answer
      await settled();
      expect(breaker.state).toBe("half-open");
      probe?.success();
      await settled();
      expect(breaker.state).toBe("closed");
    });
  });

  describe("caller cancel and deadline", () => {
    const cancels = [
      new ConnectError("the call was cancelled", Code.Canceled),
      new ConnectError("deadline exceeded", Code.DeadlineExceeded),
      new DOMException("aborted", "AbortError"),
    ];

    it("never count, nor dilute the error rate", async () => {
      for (const err of cancels) await fail(breaker, err, 10);
      expect(breaker.state).toBe("closed");
      await fail(breaker, upstream(failures.serverError), 4);
      expect(breaker.state).toBe("open"); // 4/4: the 30 cancels were not recorded
    });

    it("a cancelled probe neither closes nor counts: back to open, another probe later", async () => {
      await open();
      vi.advanceTimersByTime(options.resetTimeoutMs);
      await fail(breaker, cancels[0]);
      expect(breaker.state).toBe("open");
      vi.advanceTimersByTime(options.resetTimeoutMs);
      expect(breaker.state).toBe("half-open");
      breaker.begin()?.release();
      await settled();
      expect(breaker.state).toBe("open");
    });

    it("an attempt timeout (Sluice's own) does count", async () => {
      await fail(breaker, upstream(failures.timeout), 4);
      expect(breaker.state).toBe("open");
    });
  });

  describe("shutdown", () => {
    it("clears every timer, open or not", async () => {
      expect(vi.getTimerCount()).toBeGreaterThan(0); // the window's rotation interval
      await open();
      breaker.shutdown();
      expect(vi.getTimerCount()).toBe(0);
      vi.advanceTimersByTime(options.resetTimeoutMs * 2);
      expect(changes).toEqual(["open"]);
    });

    it("afterwards admits everything and records nothing", async () => {
      await open();
      breaker.shutdown();
      expect(breaker.isOpen()).toBe(false);
      expect(breaker.state).toBe("closed");
      const t = breaker.begin();
      expect(t).toBeDefined();
      t?.failure(upstream(failures.serverError));
      breaker.shutdown(); // idempotent
      expect(vi.getTimerCount()).toBe(0);
    });
  });

  it("rejects bad options with the field name", () => {
    expect(() => createDeploymentBreaker("x", { ...options, volumeThreshold: 2.5 })).toThrow("breaker.volumeThreshold");
    expect(() => createDeploymentBreaker("x", { ...options, errorThresholdPercentage: 0 })).toThrow(
      "breaker.errorThresholdPercentage",
    );
    expect(() => createDeploymentBreaker("x", { ...options, rollingWindowMs: 5 })).toThrow("breaker.rollingWindowMs");
    expect(() => createDeploymentBreaker("x", { ...options, resetTimeoutMs: 0 })).toThrow("breaker.resetTimeoutMs");
  });
});

describe("createDeploymentBreaker with real timers", () => {
  it("never keeps the process alive, and leaves no handles after shutdown", async () => {
    const timeouts = (): number => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
    const before = timeouts();
    const breaker = createDeploymentBreaker("openai/gpt-4o", options);
    expect(timeouts()).toBe(before); // opossum unrefs its rotation interval
    for (let i = 0; i < options.volumeThreshold; i++) breaker.begin()?.failure(upstream(failures.serverError));
    await settled();
    expect(breaker.state).toBe("open");
    expect(timeouts()).toBe(before); // ... and its reset timer
    breaker.shutdown();
    expect(timeouts()).toBe(before);
  });
});
