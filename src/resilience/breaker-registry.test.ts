import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { UpstreamError } from "../errors/gateway-error.js";
import { failures } from "../errors/failure-table.js";
import { createBreakerRegistry, type BreakerRegistry } from "./breaker-registry.js";

const options = { errorThresholdPercentage: 50, volumeThreshold: 2, rollingWindowMs: 10_000, resetTimeoutMs: 30_000 };

async function settled(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

function serverError(): UpstreamError {
  return new UpstreamError({ failure: failures.serverError, provider: "openai", message: "provider openai answered 503" });
}

describe("createBreakerRegistry", () => {
  let registry: BreakerRegistry;
  const onStateChange = vi.fn();

  beforeEach(() => {
    vi.useFakeTimers();
    onStateChange.mockClear();
    registry = createBreakerRegistry(options, { onStateChange });
  });
  afterEach(() => {
    registry.shutdown();
    vi.useRealTimers();
  });

  it("creates breakers lazily, one per deployment key", () => {
    expect(registry.states()).toEqual({});
    expect(vi.getTimerCount()).toBe(0);
    const a = registry.get("openai/gpt-4o");
    expect(registry.get("openai/gpt-4o")).toBe(a);
    expect(registry.get("anthropic/claude")).not.toBe(a);
    expect(a.name).toBe("openai/gpt-4o");
    expect(registry.states()).toEqual({ "openai/gpt-4o": "closed", "anthropic/claude": "closed" });
  });

  it("keeps deployments apart: one opening leaves the others closed", async () => {
    const openai = registry.get("openai/gpt-4o");
    registry.get("anthropic/claude");
    for (let i = 0; i < 2; i++) openai.begin()?.failure(serverError());
    await settled();
    expect(registry.states()).toEqual({ "openai/gpt-4o": "open", "anthropic/claude": "closed" });
    expect(onStateChange).toHaveBeenCalledWith("openai/gpt-4o", "open");
    expect(registry.get("anthropic/claude").isOpen()).toBe(false);
  });

  it("shutdown clears every breaker's timers; later gets are pass-through and untimed", async () => {
    const openai = registry.get("openai/gpt-4o");
    registry.get("anthropic/claude");
    for (let i = 0; i < 2; i++) openai.begin()?.failure(serverError());
    await settled();
    registry.shutdown();
    expect(vi.getTimerCount()).toBe(0);
    const late = registry.get("local/llama");
    expect(late.isOpen()).toBe(false);
    expect(late.begin()).toBeDefined();
    expect(vi.getTimerCount()).toBe(0);
    expect(Object.keys(registry.states())).not.toContain("local/llama");
  });

  it("rejects bad options when built, not at the first request", () => {
    expect(() => createBreakerRegistry({ ...options, rollingWindowMs: 0 })).toThrow("breaker.rollingWindowMs");
  });
});
