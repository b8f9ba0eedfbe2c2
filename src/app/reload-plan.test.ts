import { describe, expect, it } from "vitest";
import { parseConfig } from "../config/load-config.js";
import { createLogger } from "../telemetry/logger.js";
import { createSluice } from "./create-sluice.js";
import { configChanges, planReload, unchanged } from "./reload-plan.js";

const base = {
  providers: {
    a: { type: "demo", wordDelayMs: 0 },
    b: { type: "demo", wordDelayMs: 0 },
  },
  models: {
    chat: {
      strategy: "weighted",
      deployments: [
        { provider: "a", model: "m" },
        { provider: "b", model: "m" },
      ],
    },
  },
};
const config = (change: (doc: typeof base & Record<string, unknown>) => void = () => {}) => {
  const doc = structuredClone(base) as typeof base & Record<string, unknown>;
  change(doc);
  return parseConfig(doc, {});
};
const logger = createLogger({ level: "silent" });

describe("planReload", () => {
  it("keeps providers whose configuration is deep-equal and sections that did not change", () => {
    const plan = planReload(
      config(),
      config((doc) => {
        doc.providers.b.wordDelayMs = 5;
        doc.models.chat.deployments[0]!.model = "n";
      }),
    );
    expect([...plan.keepProviders]).toEqual(["a"]);
    expect(plan).toMatchObject({ keepBreakers: true, keepRetryBudget: true, keepState: true, keepTracing: true });
  });

  it("replaces the state store, breakers and retry budget when their sections change", () => {
    const plan = planReload(
      config(),
      config((doc) => {
        doc["state"] = { leaseMs: 10_000 };
        doc["resilience"] = { breaker: { volumeThreshold: 20 }, retryBudget: { ratio: 0.5 } };
      }),
    );
    expect(plan).toMatchObject({ keepState: false, keepBreakers: false, keepRetryBudget: false });
  });
});

describe("configChanges", () => {
  it("names what was added, removed and changed", () => {
    const changes = configChanges(
      config(),
      config((doc) => {
        delete (doc.providers as Record<string, unknown>)["b"];
        doc.models.chat.deployments.pop();
        (doc.models as Record<string, unknown>)["other"] = { deployments: [{ provider: "a", model: "x" }] };
        doc["limits"] = { contextMargin: 0.2 };
      }),
    );
    expect(changes.providers).toEqual({ added: [], removed: ["b"], changed: [] });
    expect(changes.models).toEqual({ added: ["other"], removed: [], changed: ["chat"] });
    expect(changes.sections).toEqual(["limits"]);
    expect(unchanged(configChanges(config(), config()))).toBe(true);
  });
});

describe("createSluice with a previous generation", () => {
  it("reuses unchanged providers and the shared state, builds the rest, and retires what the new one dropped", async () => {
    const first = createSluice(config(), { logger });
    const second = createSluice(
      config((doc) => {
        doc.providers.b.wordDelayMs = 5;
      }),
      { logger },
      first,
    );
    expect(second.providers.get("a")).toBe(first.providers.get("a"));
    expect(second.providers.get("b")).not.toBe(first.providers.get("b"));
    expect(second.breakers).toBe(first.breakers);
    expect(second.limiter).toBe(first.limiter);
    expect(second.state).toBe(first.state);
    expect(second.metrics).toBe(first.metrics);
    expect(second.routes).not.toBe(first.routes);

    const third = createSluice(
      config((doc) => (doc["state"] = { leaseMs: 10_000 })),
      { logger },
      second,
    );
    expect(third.state).not.toBe(second.state);
    await first.retire(second);
    await second.retire(third);
    // The dropped state store is closed; the new one answers.
    expect(third.state.health().status).toBe("ok");
    await third.close();
  });

  it("extends the metrics' label sets with a reload's new aliases", async () => {
    const first = createSluice(config(), { logger });
    const second = createSluice(
      config((doc) => {
        (doc.models as Record<string, unknown>)["fresh"] = { deployments: [{ provider: "a", model: "x" }] };
      }),
      { logger },
      first,
    );
    second.metrics.configReloaded("applied");
    const text = await second.metrics.exposition();
    expect(text).toMatch(/^sluice_config_reloads_total\{result="applied"\} 1$/m);
    expect(text).toMatch(/sluice_breaker_state\{deployment="a\/x",state="closed"\} 1/);
    await first.retire(second);
    await second.close();
  });
});
