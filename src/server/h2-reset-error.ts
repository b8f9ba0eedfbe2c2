import { constants } from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";

/**
 * The code a call ends with when the caller resets its HTTP/2 stream with `rstCode`, as
 * connect-node maps it (its mapping is not exported) after the gRPC HTTP/2 protocol's
 * table: CANCEL is the caller cancelling; an error code (INTERNAL_ERROR, which connect-es
 * clients send when their own deadline fires, PROTOCOL_ERROR…) is INTERNAL; REFUSED_STREAM
 * UNAVAILABLE; ENHANCE_YOUR_CALM RESOURCE_EXHAUSTED. Undefined for NO_ERROR and
 * STREAM_CLOSED, which say nothing more than "closed": the caller went away (CANCELLED).
 */
export function h2ResetError(rstCode: number | undefined): ConnectError | undefined {
  const code = rstCode === undefined ? undefined : resetCodes.get(rstCode);
  if (code === undefined) return undefined;
  return new ConnectError(`http/2 stream closed with error code ${resetNames.get(rstCode!)} (0x${rstCode!.toString(16)})`, code);
}

const resetCodes = new Map<number, Code>([
  [constants.NGHTTP2_PROTOCOL_ERROR, Code.Internal],
  [constants.NGHTTP2_INTERNAL_ERROR, Code.Internal],
  [constants.NGHTTP2_FLOW_CONTROL_ERROR, Code.Internal],
  [constants.NGHTTP2_SETTINGS_TIMEOUT, Code.Internal],
  [constants.NGHTTP2_FRAME_SIZE_ERROR, Code.Internal],
  [constants.NGHTTP2_COMPRESSION_ERROR, Code.Internal],
  [constants.NGHTTP2_CONNECT_ERROR, Code.Internal],
  [constants.NGHTTP2_REFUSED_STREAM, Code.Unavailable],
  [constants.NGHTTP2_CANCEL, Code.Canceled],
  [constants.NGHTTP2_ENHANCE_YOUR_CALM, Code.ResourceExhausted],
  [constants.NGHTTP2_INADEQUATE_SECURITY, Code.PermissionDenied],
  [constants.NGHTTP2_HTTP_1_1_REQUIRED, Code.PermissionDenied],
]);

const resetNames = new Map<number, string>([
  [constants.NGHTTP2_PROTOCOL_ERROR, "PROTOCOL_ERROR"],
  [constants.NGHTTP2_INTERNAL_ERROR, "INTERNAL_ERROR"],
  [constants.NGHTTP2_FLOW_CONTROL_ERROR, "FLOW_CONTROL_ERROR"],
  [constants.NGHTTP2_SETTINGS_TIMEOUT, "SETTINGS_TIMEOUT"],
  [constants.NGHTTP2_FRAME_SIZE_ERROR, "FRAME_SIZE_ERROR"],
  [constants.NGHTTP2_COMPRESSION_ERROR, "COMPRESSION_ERROR"],
  [constants.NGHTTP2_CONNECT_ERROR, "CONNECT_ERROR"],
  [constants.NGHTTP2_REFUSED_STREAM, "REFUSED_STREAM"],
  [constants.NGHTTP2_CANCEL, "CANCEL"],
  [constants.NGHTTP2_ENHANCE_YOUR_CALM, "ENHANCE_YOUR_CALM"],
  [constants.NGHTTP2_INADEQUATE_SECURITY, "INADEQUATE_SECURITY"],
  [constants.NGHTTP2_HTTP_1_1_REQUIRED, "HTTP_1_1_REQUIRED"],
]);
