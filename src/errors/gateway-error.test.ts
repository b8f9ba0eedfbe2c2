import { Code } from "@connectrpc/connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { describe, expect, it } from "vitest";
import { BadRequestSchema, ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { boundError, errorLimits } from "./bounded-error.js";
import { classifyHttpFailure } from "./failure-table.js";
import { gatewayError, invalidArgument, UpstreamError, type FieldViolation } from "./gateway-error.js";
import { reasons } from "./reasons.js";

const violation = (i: number): FieldViolation => ({
  field: `messages[${i}].content`,
  description: "required: at least one content part",
  reason: reasons.requiredField,
});

describe("invalidArgument", () => {
  it("names one bad field as `field: description`, with ErrorInfo and BadRequest", () => {
    const err = invalidArgument([{ field: "model", description: "required", reason: reasons.requiredField }]);
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe("model: required");
    expect(err.findDetails(ErrorInfoSchema)[0]?.reason).toBe(reasons.requiredField);
    expect(err.findDetails(BadRequestSchema)[0]?.fieldViolations.map((v) => v.field)).toEqual(["model"]);
  });

  it("lists a few bad fields in the message", () => {
    const err = invalidArgument([violation(0), violation(1), { field: "top_p", description: "must be between 0 and 1" }]);
    expect(err.rawMessage).toBe(
      "3 invalid fields: messages[0].content: required: at least one content part; " +
        "messages[1].content: required: at least one content part; top_p: must be between 0 and 1",
    );
    expect(err.findDetails(BadRequestSchema)[0]?.fieldViolations[2]).toMatchObject({
      field: "top_p",
      reason: reasons.invalidField,
    });
  });

  it("keeps the first maxViolations of many, and says how many more there were", () => {
    const all = Array.from({ length: 5000 }, (_, i) => violation(i));
    const err = invalidArgument(all);
    const kept = err.findDetails(BadRequestSchema)[0]!.fieldViolations;
    expect(kept.length).toBe(errorLimits.maxViolations);
    expect(kept.at(-1)?.field).toBe(`messages[${errorLimits.maxViolations - 1}].content`);
    expect(err.rawMessage).toMatch(/^5000 invalid fields: messages\[0\]\.content: required: at least one content part; /);
    const listed = err.rawMessage.split("; ").length - 1;
    expect(err.rawMessage).toMatch(new RegExp(`; … and ${5000 - listed} more$`));
    // Already within bounds: nothing left for boundError to cut.
    expect(boundError(err)).toBe(err);
  });

  it("counts violations the caller did not record", () => {
    const err = invalidArgument([violation(0), violation(1)], 414);
    expect(err.rawMessage).toMatch(/^414 invalid fields: .*; … and 412 more$/);
    expect(err.findDetails(BadRequestSchema)[0]!.fieldViolations.length).toBe(2);
  });

  it("stays bounded whatever the fields and descriptions hold", () => {
    const huge = Array.from({ length: 50 }, (_, i) => ({ field: `f${i}`.repeat(5000), description: "日本🚀".repeat(5000) }));
    const err = invalidArgument(huge);
    const trailers = setTrailerStatus(new Headers(), err);
    const size = (trailers.get("grpc-message")?.length ?? 0) + (trailers.get("grpc-status-details-bin")?.length ?? 0);
    expect(size).toBeLessThanOrEqual(errorLimits.maxEncodedBytes);
    expect(err.rawMessage.length).toBeLessThanOrEqual(errorLimits.maxMessageLength);
  });
});

describe("messages bounded at the source", () => {
  it("gatewayError and UpstreamError cut a long message to the limit, on every path alike", () => {
    const long = "x".repeat(5 * errorLimits.maxMessageLength);
    const gateway = gatewayError(Code.NotFound, reasons.modelNotFound, long);
    expect(gateway.rawMessage.length).toBe(errorLimits.maxMessageLength);
    expect(gateway.rawMessage.endsWith("…")).toBe(true);
    const upstream = new UpstreamError({ failure: classifyHttpFailure({ status: 500 }), provider: "p", message: long });
    expect(upstream.rawMessage.length).toBe(errorLimits.maxMessageLength);
    expect(gatewayError(Code.NotFound, reasons.modelNotFound, "short").rawMessage).toBe("short");
  });
});
