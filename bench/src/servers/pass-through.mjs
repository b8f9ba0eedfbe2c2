// The Node ceiling: the least a Node proxy can do — node:http in, undici out, bytes piped
// back unchanged (SSE included). Sluice cannot beat this on the same runtime; the gap
// between the two is what its features cost. The same handler also listens on an h2c port
// (node:http2's compatibility API): the ceiling for an HTTP/2 front end such as gRPC, where
// Node's HTTP/2 stack costs more per request than its HTTP/1.1 one whatever the proxy does.
//
// Usage: node pass-through.mjs --upstream http://127.0.0.1:PORT [--port 0] [--h2-port 0]
// Prints one JSON line: {"msg":"pass-through listening","url":"http://127.0.0.1:P","h2Url":"http://127.0.0.1:Q"}
import http from "node:http";
import http2 from "node:http2";
import { pipeline } from "node:stream/promises";
import { parseArgs } from "node:util";
import { Pool } from "undici";

const { values: args } = parseArgs({
  options: { upstream: { type: "string" }, port: { type: "string", default: "0" }, "h2-port": { type: "string", default: "0" } },
});
if (!args.upstream) throw new Error("--upstream is required");

// No connection cap, like an unconfigured client: the proxy never queues in front of the fake.
const pool = new Pool(args.upstream, { connections: null, keepAliveTimeout: 60_000 });
const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "upgrade", "host", "proxy-connection"]);

function endToEnd(headers) {
  const out = {};
  // HTTP/2 pseudo-headers (":path"…) are not HTTP/1.1 headers either.
  for (const [name, value] of Object.entries(headers)) if (!HOP_BY_HOP.has(name) && name[0] !== ":") out[name] = value;
  return out;
}

async function forward(req, res, body) {
  const upstream = await pool.request({ method: req.method, path: req.url, headers: endToEnd(req.headers), body });
  res.writeHead(upstream.statusCode, endToEnd(upstream.headers));
  // pipeline destroys the upstream body when the client goes away, which aborts the undici request.
  await pipeline(upstream.body, res);
}

function handle(req, res) {
  const parts = [];
  req.on("data", (part) => parts.push(part));
  req.on("end", () => {
    forward(req, res, Buffer.concat(parts)).catch(() => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
  });
}

const h1 = http.createServer({ keepAliveTimeout: 120_000, requestTimeout: 0 }, handle);
const h2 = http2.createServer({ settings: { maxConcurrentStreams: 100_000 } }, handle);
const listen = (server, port) =>
  new Promise((resolve) => server.listen(Number(port), "127.0.0.1", () => resolve(server.address().port)));
const [h1Port, h2Port] = await Promise.all([listen(h1, args.port), listen(h2, args["h2-port"])]);
process.stdout.write(
  `${JSON.stringify({ msg: "pass-through listening", url: `http://127.0.0.1:${h1Port}`, h2Url: `http://127.0.0.1:${h2Port}` })}\n`,
);
process.on("SIGTERM", () => process.exit(0));
process.on("SIGINT", () => process.exit(0));
