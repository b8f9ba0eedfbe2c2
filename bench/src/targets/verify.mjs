// Before any load: one real request per target, checked for the fake's answer text (and, for
// gRPC, grpc-status 0 in the trailers). wrk and h2load count only HTTP statuses, and a gRPC
// error is an HTTP 200 — so a target that fails here is skipped with the reason, instead of
// being "fast" because it answers errors quickly.
import http from "node:http";
import http2 from "node:http2";

const ANSWER = "Hello! How can I help";

function h1Post({ url, headers, body }) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: "POST", headers, agent: false, timeout: 10_000 }, (res) => {
      const parts = [];
      res.on("data", (part) => parts.push(part));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, trailers: {}, body: Buffer.concat(parts) }));
    });
    req.once("error", reject);
    req.once("timeout", () => req.destroy(new Error("timeout")));
    req.end(body);
  });
}

function h2Post({ url, headers, body }) {
  return new Promise((resolve, reject) => {
    const session = http2.connect(new URL(url).origin);
    session.once("error", reject);
    const stream = session.request({ ":method": "POST", ":path": new URL(url).pathname, ...headers });
    const parts = [];
    let responseHeaders = {};
    let trailers = {};
    stream.setTimeout(10_000, () => stream.close(http2.constants.NGHTTP2_CANCEL));
    stream.on("response", (h) => (responseHeaders = h));
    stream.on("trailers", (t) => (trailers = t));
    stream.on("data", (part) => parts.push(part));
    stream.once("error", (error) => {
      session.close();
      reject(error);
    });
    stream.on("end", () => {
      session.close();
      resolve({ status: responseHeaders[":status"], headers: responseHeaders, trailers, body: Buffer.concat(parts) });
    });
    stream.end(body);
  });
}

/**
 * Sends the unary workload once. Returns { ok, reason?, dataBytes } — dataBytes is the
 * response body size h2load's DATA byte count is later compared against.
 */
export async function verifyTarget(target) {
  if (!target.server) return { ok: false, reason: "not started" };
  const spec = target.request("unary");
  let res;
  try {
    res = target.proto === "h2" ? await h2Post(spec) : await h1Post(spec);
  } catch (error) {
    return { ok: false, reason: `request failed: ${error.message}` };
  }
  const head = res.body.toString("utf8", 0, 200).replace(/\s+/g, " ");
  if (res.status === 404) return { ok: false, reason: `404 at ${new URL(spec.url).pathname} (route not there yet?)` };
  if (res.status !== 200) return { ok: false, reason: `HTTP ${res.status}: ${head}` };
  const grpcStatus = res.trailers["grpc-status"] ?? res.headers["grpc-status"];
  if (spec.headers["content-type"] === "application/grpc" && grpcStatus !== "0") {
    return {
      ok: false,
      reason: `grpc-status ${grpcStatus}: ${res.trailers["grpc-message"] ?? res.headers["grpc-message"] ?? ""}`,
    };
  }
  if (!res.body.includes(ANSWER)) return { ok: false, reason: `unexpected answer: ${head}` };
  return { ok: true, dataBytes: res.body.length };
}
