import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { reasons } from "../errors/reasons.js";
import { createRequestByteBudget } from "./request-byte-budget.js";

describe("request byte budget", () => {
  it("takes bytes up to the budget, refuses what would cross it, and takes again once released", () => {
    const budget = createRequestByteBudget(100);
    expect(budget.take(60)).toBe(true);
    expect(budget.take(40)).toBe(true);
    expect(budget.take(1)).toBe(false);
    expect(budget.used).toBe(100);
    budget.release(60);
    expect(budget.take(50)).toBe(true);
    expect(budget.used).toBe(90);
  });

  it("a refused take takes nothing", () => {
    const budget = createRequestByteBudget(10);
    expect(budget.take(11)).toBe(false);
    expect(budget.used).toBe(0);
  });

  it("refuses with RESOURCE_EXHAUSTED, reason SERVER_OVERLOADED and a retry delay", () => {
    const { overloaded } = createRequestByteBudget(1024);
    expect(overloaded.code).toBe(Code.ResourceExhausted);
    expect(overloaded.rawMessage).toContain("server.maxBufferedRequestBytes (1024 bytes)");
    expect(overloaded.findDetails(ErrorInfoSchema)[0]?.reason).toBe(reasons.serverOverloaded);
    expect(overloaded.findDetails(RetryInfoSchema)[0]?.retryDelay?.seconds).toBe(1n);
  });
});
