import { afterAll, beforeEach, describe, expect, it } from "vitest";
import type { AdmissionRequest, StateStore } from "../../src/state/state-store.js";

/**
 * What every StateStore does, run against each implementation: memory (memory-state.test.ts)
 * and Redis against a real redis-server (test/integration/redis-state.test.ts). Time is
 * passed in (`now`), so windows, leases and periods are checked without waiting.
 *
 * `fresh()` returns a store with nothing in it (Redis: a new key prefix).
 */
export function describeStateStore(name: string, fresh: () => Promise<StateStore>): void {
  describe(`StateStore contract: ${name}`, () => {
    let store: StateStore;
    const opened: StateStore[] = [];
    beforeEach(async () => {
      store = await fresh();
      opened.push(store);
    });
    afterAll(async () => {
      await Promise.all(opened.map((s) => s.close()));
    });

    const t0 = Date.UTC(2026, 11, 4, 12, 0, 0);
    let ids = 0;
    const call = (parts: Partial<AdmissionRequest>): AdmissionRequest => ({
      id: `call-${++ids}`,
      windows: [],
      slots: [],
      budgets: [],
      leaseMs: 30_000,
      ...parts,
    });
    const rpm = (limit: number, cost = 1) => ({ key: "w:rpm", limit, windowMs: 60_000, cost });

    it("a window admits up to its limit in any 60 s, then refuses until the oldest entry leaves", async () => {
      for (let i = 0; i < 3; i++) {
        const outcome = await store.admit(call({ windows: [rpm(3)] }), t0 + i * 1_000);
        expect(outcome.admitted).toBe(true);
        expect(outcome.windows[0]!.remaining).toBe(2 - i);
      }
      const refused = await store.admit(call({ windows: [rpm(3)] }), t0 + 10_000);
      expect(refused).toMatchObject({ admitted: false, kind: "window", index: 0 });
      // The first entry (t0) leaves the window at t0 + 60 s.
      expect(refused.admitted === false && refused.retryAfterMs).toBe(50_000);
      expect(refused.windows[0]!.remaining).toBe(0);
      expect((await store.admit(call({ windows: [rpm(3)] }), t0 + 59_999)).admitted).toBe(false);
      expect((await store.admit(call({ windows: [rpm(3)] }), t0 + 60_001)).admitted).toBe(true);
    });

    it("charges a window by cost, and a settlement replaces the reserved cost with the actual one", async () => {
      const tpm = (cost: number) => ({ key: "w:tpm", limit: 1_000, windowMs: 60_000, cost });
      const first = call({ windows: [tpm(800)] });
      expect((await store.admit(first, t0)).admitted).toBe(true);
      const big = await store.admit(call({ windows: [tpm(300)] }), t0 + 1);
      expect(big.admitted).toBe(false);
      // The call used 200 tokens, not the 800 reserved: 800 more now fit.
      await store.settle(
        { id: first.id, windows: [{ key: "w:tpm", windowMs: 60_000, reserved: 800, cost: 200 }], slots: [], budgets: [] },
        t0 + 2,
      );
      const after = await store.admit(call({ windows: [tpm(800)] }), t0 + 3);
      expect(after).toMatchObject({ admitted: true, windows: [{ remaining: 0 }] });
    });

    it("a call that used more than it reserved after its entry left the window counts the excess from then", async () => {
      const tpm = (cost: number) => ({ key: "w:late", limit: 1_000, windowMs: 60_000, cost });
      const long = call({ windows: [tpm(100)] });
      expect((await store.admit(long, t0)).admitted).toBe(true);
      await store.settle(
        { id: long.id, windows: [{ key: "w:late", windowMs: 60_000, reserved: 100, cost: 900 }], slots: [], budgets: [] },
        t0 + 90_000,
      );
      expect((await store.admit(call({ windows: [tpm(300)] }), t0 + 90_001)).admitted).toBe(false);
      expect((await store.admit(call({ windows: [tpm(300)] }), t0 + 150_001)).admitted).toBe(true);
    });

    it("admits all charges or none: a refused slot reserves no window units", async () => {
      const slot = { key: "s:one", limit: 1 };
      expect((await store.admit(call({ slots: [slot] }), t0)).admitted).toBe(true);
      const refused = await store.admit(call({ windows: [rpm(1)], slots: [slot] }), t0 + 1);
      expect(refused).toMatchObject({ admitted: false, kind: "slot", index: 0 });
      // The window's one unit was not spent by the refused call.
      expect((await store.admit(call({ windows: [rpm(1)] }), t0 + 2)).admitted).toBe(true);
    });

    it("slots: at most the limit held; a settlement frees one; an unrenewed one lapses after its lease", async () => {
      const slot = { key: "s:two", limit: 2 };
      const a = call({ slots: [slot], leaseMs: 5_000 });
      const b = call({ slots: [slot], leaseMs: 5_000 });
      expect((await store.admit(a, t0)).admitted).toBe(true);
      expect((await store.admit(b, t0)).admitted).toBe(true);
      expect((await store.admit(call({ slots: [slot] }), t0 + 1)).admitted).toBe(false);
      await store.settle({ id: a.id, windows: [], slots: ["s:two"], budgets: [] }, t0 + 2);
      const c = call({ slots: [slot], leaseMs: 5_000 });
      expect((await store.admit(c, t0 + 3)).admitted).toBe(true);
      // b's lease is renewed, c's is not: at t0 + 8 s c has lapsed (a crashed replica's call), b holds.
      await store.renew([{ id: b.id, slots: ["s:two"], budgets: [] }], 5_000, t0 + 4_000);
      expect((await store.admit(call({ slots: [slot] }), t0 + 8_100)).admitted).toBe(true);
      expect((await store.admit(call({ slots: [slot] }), t0 + 8_200)).admitted).toBe(false);
    });

    it("budgets: spent + reservations in force + the new amount within the limit; refused until the period ends", async () => {
      const periodEndMs = t0 + 12 * 3_600_000;
      const usd = (amount: number) => ({ key: "b:usd", limit: 1_000_000, amount, periodEndMs });
      const a = call({ budgets: [usd(600_000)] });
      expect((await store.admit(a, t0)).admitted).toBe(true);
      const refused = await store.admit(call({ budgets: [usd(600_000)] }), t0 + 1);
      expect(refused).toMatchObject({ admitted: false, kind: "budget", index: 0, retryAfterMs: periodEndMs - t0 - 1 });
      // a cost 300 000: its reservation released, 300 000 spent; 700 000 left.
      await store.settle({ id: a.id, windows: [], slots: [], budgets: [{ key: "b:usd", spent: 300_000, periodEndMs }] }, t0 + 2);
      expect((await store.admit(call({ budgets: [usd(700_000)] }), t0 + 3)).admitted).toBe(true);
      expect((await store.admit(call({ budgets: [usd(1)] }), t0 + 4)).admitted).toBe(false);
    });

    it("a budget reservation of a call that never settles lapses after its lease", async () => {
      const periodEndMs = t0 + 3_600_000;
      const usd = (amount: number) => ({ key: "b:lapse", limit: 100, amount, periodEndMs });
      expect((await store.admit(call({ budgets: [usd(100)], leaseMs: 2_000 }), t0)).admitted).toBe(true);
      expect((await store.admit(call({ budgets: [usd(1)] }), t0 + 1_000)).admitted).toBe(false);
      expect((await store.admit(call({ budgets: [usd(100)] }), t0 + 2_001)).admitted).toBe(true);
    });

    it("the usage ledger sums calls per tenant, key, alias and deployment, by UTC day and month", async () => {
      const entry = {
        tenant: "team-a",
        keyId: "k1",
        alias: "fast",
        deployment: "openai/gpt-4o-mini",
        inputTokens: 10,
        outputTokens: 5,
        costMicroUsd: 7,
        at: t0,
      };
      await store.recordUsage(entry);
      await store.recordUsage({ ...entry, inputTokens: 1, outputTokens: 2, costMicroUsd: 3 });
      await store.recordUsage({ ...entry, tenant: "team-b" });
      await store.recordUsage({ ...entry, at: t0 + 86_400_000 });
      const day = await store.usage({ tenant: "team-a", period: "day", bucket: "2026-12-04" });
      expect(day).toEqual([
        {
          tenant: "team-a",
          keyId: "k1",
          alias: "fast",
          deployment: "openai/gpt-4o-mini",
          requests: 2,
          inputTokens: 11,
          outputTokens: 7,
          costMicroUsd: 10,
        },
      ]);
      const month = await store.usage({ tenant: "team-a", period: "month", bucket: "2026-12" });
      expect(month[0]).toMatchObject({ requests: 3, inputTokens: 21 });
      const everyone = await store.usage({ tenant: "", period: "day", bucket: "2026-12-04" });
      expect(everyone.map((row) => row.tenant).sort()).toEqual(["team-a", "team-b"]);
      expect(await store.usage({ tenant: "team-a", period: "day", bucket: "2026-12-03" })).toEqual([]);
    });

    it("rememberOnce: true the first time within the TTL, false after, true again once it lapsed", async () => {
      expect(await store.rememberOnce("nonce-1", 1_000, t0)).toBe(true);
      expect(await store.rememberOnce("nonce-1", 1_000, t0 + 500)).toBe(false);
      expect(await store.rememberOnce("nonce-2", 1_000, t0 + 500)).toBe(true);
      expect(await store.rememberOnce("nonce-1", 1_000, t0 + 1_001)).toBe(true);
    });

    it("reports its health", () => {
      expect(store.health()).toMatchObject({ status: "ok", backend: store.backend });
    });
  });
}
