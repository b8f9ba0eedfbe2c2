// An OTLP/HTTP endpoint that accepts and discards spans: the collector a traced Sluice
// exports to in the bench (export cost is measured in Sluice; the sink only has to answer
// fast). Prints one JSON line when listening; GET /stats reports what it received.
import { createServer } from "node:http";

let requests = 0;
let bytes = 0;
const server = createServer((req, res) => {
  if (req.method === "GET" && req.url === "/stats") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ requests, bytes }));
    return;
  }
  req.on("data", (chunk) => {
    bytes += chunk.length;
  });
  req.on("end", () => {
    requests++;
    // An empty ExportTraceServiceResponse: zero bytes of protobuf, `{}` in JSON.
    const json = (req.headers["content-type"] ?? "").includes("json");
    res.writeHead(200, { "content-type": json ? "application/json" : "application/x-protobuf" });
    res.end(json ? "{}" : "");
  });
});
server.listen(0, "127.0.0.1", () => {
  const { port } = server.address();
  process.stdout.write(`${JSON.stringify({ msg: "otlp sink listening", url: `http://127.0.0.1:${port}` })}\n`);
});
