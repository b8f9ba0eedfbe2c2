import type { IncomingHttpHeaders } from "node:http";
import { parseTimeout as parseConnectTimeout } from "@connectrpc/connect/protocol-connect";
import { parseTimeout as parseGrpcTimeout } from "@connectrpc/connect/protocol-grpc";
import { describe, expect, it } from "vitest";
import { timeoutFromHeader } from "./lane-headers.js";
import { clampTimeoutHeaders, grpcDeadlineCap, maxTimerMs } from "./timeout-clamp.js";

describe("deadline clamp", () => {
  it("lanes: a timeout past the cap is the cap; shorter ones are kept; malformed is null", () => {
    expect(timeoutFromHeader("2147483648", parseConnectTimeout, maxTimerMs)).toBe(maxTimerMs);
    expect(timeoutFromHeader("9999999999", parseConnectTimeout, maxTimerMs)).toBe(maxTimerMs);
    expect(timeoutFromHeader("2147483647", parseConnectTimeout, maxTimerMs)).toBe(2_147_483_647);
    expect(timeoutFromHeader("1500", parseConnectTimeout, 1_000)).toBe(1_000);
    expect(timeoutFromHeader("250", parseConnectTimeout, 1_000)).toBe(250);
    expect(timeoutFromHeader("597H", parseGrpcTimeout, grpcDeadlineCap(maxTimerMs))).toBe(2_147_483_000);
    expect(timeoutFromHeader("99999999H", parseGrpcTimeout, grpcDeadlineCap(maxTimerMs))).toBe(2_147_483_000);
    expect(timeoutFromHeader("5S", parseGrpcTimeout, grpcDeadlineCap(maxTimerMs))).toBe(5_000);
    expect(timeoutFromHeader(undefined, parseGrpcTimeout, maxTimerMs)).toBeUndefined();
    expect(timeoutFromHeader("soon", parseGrpcTimeout, maxTimerMs)).toBeNull();
  });

  it("gRPC: the cap in milliseconds when grpc-timeout can say it (8 digits), else whole seconds", () => {
    expect(grpcDeadlineCap(99_999_999)).toBe(99_999_999);
    expect(grpcDeadlineCap(60_000)).toBe(60_000);
    expect(grpcDeadlineCap(maxTimerMs)).toBe(2_147_483_000);
  });

  it("connect-node: rewrites a timeout header past the cap to the cap, leaves the rest as they are", () => {
    const clamp = (headers: IncomingHttpHeaders, maxMs = maxTimerMs): IncomingHttpHeaders => {
      clampTimeoutHeaders(headers, maxMs);
      return headers;
    };
    expect(clamp({ "connect-timeout-ms": "2147483648" })).toEqual({ "connect-timeout-ms": "2147483647" });
    expect(clamp({ "connect-timeout-ms": "120000" })).toEqual({ "connect-timeout-ms": "120000" });
    expect(clamp({ "connect-timeout-ms": "120000" }, 60_000)).toEqual({ "connect-timeout-ms": "60000" });
    expect(clamp({ "grpc-timeout": "597H" })).toEqual({ "grpc-timeout": "2147483S" });
    expect(clamp({ "grpc-timeout": "2H" }, 60_000)).toEqual({ "grpc-timeout": "60000m" });
    expect(clamp({ "grpc-timeout": "30S" })).toEqual({ "grpc-timeout": "30S" });
    // Malformed: left for connect-node to answer with the protocol's error.
    expect(clamp({ "connect-timeout-ms": "soon", "grpc-timeout": "1Y" })).toEqual({
      "connect-timeout-ms": "soon",
      "grpc-timeout": "1Y",
    });
    // What connect-node reads back is the cap, in each protocol's parser.
    const headers = clamp({ "connect-timeout-ms": "9999999999", "grpc-timeout": "99999999H" });
    expect(parseConnectTimeout(headers["connect-timeout-ms"] as string, maxTimerMs)).toEqual({ timeoutMs: maxTimerMs });
    expect(parseGrpcTimeout(headers["grpc-timeout"] as string, maxTimerMs)).toEqual({ timeoutMs: 2_147_483_000 });
  });
});
