// The Node ceiling: the least a Node proxy can do — node:http in, undici out, bytes piped
// back unchanged (SSE included). Sluice cannot beat this on the same runtime; the gap
// between the two is what its features cost.
//
// Usage: node pass-through.mjs --upstream http://127.0.0.1:PORT [--port 0]
import http from "node:http";
import { pipeline } from "node:stream/promises";
import { parseArgs } from "node:util";
import { Pool } from "undici";

const { values: args } = parseArgs({
  options: { upstream: { type: "string" }, port: { type: "string", default: "0" } },
});
if (!args.upstream) throw new Error("--upstream is required");

// No connection cap, like an unconfigured client: the proxy never queues in front of the fake.
const pool = new Pool(args.upstream, { connections: null, keepAliveTimeout: 60_000 });
const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "upgrade", "host", "proxy-connection"]);

function endToEnd(headers) {
  const out = {};
  for (const [name, value] of Object.entries(headers)) if (!HOP_BY_HOP.has(name)) out[name] = value;
  return out;
}

async function forward(req, res, body) {
  const upstream = await pool.request({ method: req.method, path: req.url, headers: endToEnd(req.headers), body });
  res.writeHead(upstream.statusCode, endToEnd(upstream.headers));
  // pipeline destroys the upstream body when the client goes away, which aborts the undici request.
  await pipeline(upstream.body, res);
}

const server = http.createServer({ keepAliveTimeout: 120_000, requestTimeout: 0 }, (req, res) => {
  const parts = [];
  req.on("data", (part) => parts.push(part));
  req.on("end", () => {
    forward(req, res, Buffer.concat(parts)).catch(() => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
  });
});

server.listen(Number(args.port), "127.0.0.1", () => {
  process.stdout.write(`${JSON.stringify({ msg: "pass-through listening", url: `http://127.0.0.1:${server.address().port}` })}\n`);
});
process.on("SIGTERM", () => process.exit(0));
process.on("SIGINT", () => process.exit(0));
