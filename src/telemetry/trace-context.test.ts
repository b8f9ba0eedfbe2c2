import { propagation, trace } from "@opentelemetry/api";
import { describe, expect, it } from "vitest";
import { callerTraceParent, extractCallerContext, formatTraceparent } from "./trace-context.js";

const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

describe("the caller's trace context", () => {
  it("traceparent, tracestate and baggage from the request headers", () => {
    const context = extractCallerContext(
      new Headers({ traceparent, tracestate: "congo=t61rcWkgMzE", baggage: "tenant=acme,region=eu%20west" }),
    );
    expect(trace.getSpanContext(context)).toMatchObject({
      traceId: "0af7651916cd43dd8448eb211c80319c",
      spanId: "b7ad6b7169203331",
      traceFlags: 1,
      isRemote: true,
    });
    expect(trace.getSpanContext(context)?.traceState?.get("congo")).toBe("t61rcWkgMzE");
    expect(propagation.getBaggage(context)?.getEntry("region")?.value).toBe("eu west");
  });

  it("an invalid or repeated traceparent is no parent (W3C): a new trace starts", () => {
    for (const header of [
      new Headers({ traceparent: "00-00000000000000000000000000000000-b7ad6b7169203331-01" }),
      new Headers({ traceparent: `${traceparent}-extra` }),
      new Headers([
        ["traceparent", traceparent],
        ["traceparent", traceparent],
      ]),
    ]) {
      expect(trace.getSpanContext(extractCallerContext(header))).toBeUndefined();
      expect(callerTraceParent(header)).toBeNull();
    }
  });

  it("formats a traceparent with the sampled flag only", () => {
    expect(formatTraceparent("0af7651916cd43dd8448eb211c80319c", "00f067aa0ba902b7", 3)).toBe(
      "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01",
    );
    expect(formatTraceparent("0af7651916cd43dd8448eb211c80319c", "00f067aa0ba902b7", 0)).toMatch(/-00$/);
  });
});
