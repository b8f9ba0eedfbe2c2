import type { JsonReadOptions, JsonWriteOptions } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus, errorToJsonBytes, parseTimeout, trailerMux } from "@connectrpc/connect/protocol-connect";
import type { ActiveCalls } from "./active-calls.js";
import { abandonCall, startFastCall, type FastLane, type NodeRequest, type NodeResponse } from "./fast-call.js";
import { hasEntries, isIdentityEncoding, timeoutFromHeader } from "./lane-headers.js";
import type { LaneRoutes, UnaryLaneRoute } from "./lane-routes.js";
import { readRequestBody } from "./read-body.js";

export interface ConnectUnaryFastLaneOptions {
  /** The route table, prepared once for every lane. */
  readonly routes: LaneRoutes;
  readonly active: ActiveCalls;
  readonly maxRequestBytes: number;
  readonly jsonOptions: Partial<JsonReadOptions & JsonWriteOptions>;
}

const jsonContentType = /^application\/json(?:;\s*charset=utf-?8)?$/i;
const textDecoder = new TextDecoder();

/**
 * The Connect protocol's unary JSON call — `POST` with `content-type: application/json`,
 * what curl and most HTTP clients send — served without the general adapter's per-call
 * machinery (a universal request/response pair, Headers objects, async-iterable pipelines
 * and two linked AbortControllers that abort, building a DOMException, after every call),
 * which dominated a call's CPU in profiles (bench/results has the numbers).
 *
 * It speaks exactly what connect-node would answer: same JSON options, same error body
 * (`errorToJsonBytes`), same HTTP status mapping, same timeout parsing, and runs the same
 * implementations behind the same interceptors. Anything it does not handle — another
 * content type, compression, GET, an unknown path, a malformed timeout header — is left
 * to connect-node (it returns false before touching the request).
 * Tests: the integration suites run every Connect JSON unary call through this lane;
 * connect-unary-fast-lane.test.ts compares it byte for byte with connect-node.
 */
export function createConnectUnaryFastLane(options: ConnectUnaryFastLaneOptions): FastLane {
  const { routes, active, maxRequestBytes, jsonOptions } = options;

  return function fastLane(req, res) {
    if (req.method !== "POST") return false;
    const route = routes.get(req.url ?? "");
    if (route === undefined || route.kind !== "unary") return false;
    const headers = req.headers;
    const contentType = headers["content-type"];
    if (contentType === undefined || !jsonContentType.test(contentType)) return false;
    if (!isIdentityEncoding(headers["content-encoding"])) return false;
    const version = headers["connect-protocol-version"];
    if (version !== undefined && version !== "1") return false;
    const timeoutMs = timeoutFromHeader(headers["connect-timeout-ms"], parseTimeout);
    if (timeoutMs === null) return false;
    void serve(route, req, res, timeoutMs);
    return true;
  };

  async function serve(route: UnaryLaneRoute, req: NodeRequest, res: NodeResponse, timeoutMs: number | undefined) {
    // Never rejects: a failure while answering (a bug) resets this call, not the process.
    try {
      const call = startFastCall(route.method, "connect", req.url ?? "", req.headers, res, timeoutMs, active);
      const { context } = call;
      let status = 200;
      let body: Uint8Array | string;
      try {
        const bytes = await readRequestBody(req, maxRequestBytes);
        let message;
        try {
          message = route.inputJson.parse(textDecoder.decode(bytes));
        } catch (err) {
          throw ConnectError.from(err, Code.InvalidArgument);
        }
        const response = await route.invoke(call, message);
        body = route.outputJson.stringify(response.message);
      } catch (err) {
        const error =
          err instanceof ConnectError ? err : new ConnectError("internal error", Code.Internal, undefined, undefined, err);
        status = codeToHttpStatus(error.code);
        if (hasEntries(error.metadata)) {
          error.metadata.forEach((value, key) => {
            context.responseHeader.set(key, value);
          });
        }
        body = errorToJsonBytes(error, jsonOptions);
      } finally {
        call.end();
      }
      if (res.destroyed) return;
      const outgoing: Record<string, string> = {};
      const header = call.responseHeaders();
      const trailer = call.responseTrailers();
      const copy = (value: string, key: string): void => {
        outgoing[key] = value;
      };
      // Unary Connect sends trailers as `trailer-`-prefixed headers; without any, the headers
      // go out as they are (no merged Headers copy per call — every call sets route headers).
      if (trailer !== undefined) trailerMux(header ?? new Headers(), trailer).forEach(copy);
      else header?.forEach(copy);
      outgoing["content-type"] = "application/json";
      outgoing["content-length"] = String(typeof body === "string" ? Buffer.byteLength(body) : body.byteLength);
      res.writeHead(status, outgoing);
      res.end(body);
    } catch {
      abandonCall(res);
    }
  }
}
