// A fast fake OpenAI upstream, run in its own process (plain node:http, plus the same
// handler on an h2c port so h2load has a floor to compare gRPC against).
//
// Behaviour is chosen per request by the `model` string, because the model is the one
// field every proxy under test forwards untouched (Sluice maps an alias to a deployment
// model, Portkey and the pass-through forward the body):
//   "fake"                              unary, no delay; stream: 64 chunks, no delays
//   "fake?delay=20"                     unary answer after 20 ms
//   "fake?chunks=64&first=20&gap=20"    stream: 20 ms before the first chunk, 20 ms between chunks
// Every streamed content chunk carries `t<ns>` (process.hrtime, CLOCK_MONOTONIC — one clock for
// all processes on this machine) so the streaming client can measure each chunk's transit time.
//
// Usage: node fake-upstream.mjs [--port 0] [--h2-port 0]
// Prints one JSON line: {"msg":"fake listening","url":"http://127.0.0.1:P","h2Url":"http://127.0.0.1:Q"}
import http from "node:http";
import http2 from "node:http2";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({
  options: {
    port: { type: "string", default: "0" },
    "h2-port": { type: "string", default: "0" },
  },
});

const DEFAULTS = { delay: 0, chunks: 64, first: 0, gap: 0, words: 0 };

/**
 * A unary answer: the short greeting, followed by `words` more words (~1 token each) when
 * asked for (the harness verifies every target by the greeting).
 */
function answerText(words) {
  const greeting = "Hello! How can I help you today?";
  if (words <= 0) return greeting;
  const vocabulary = ["the", "project", "members", "tab", "invite", "workspace", "roadmap", "visible", "plan", "limit"];
  return `${greeting} ${Array.from({ length: words }, (_, i) => vocabulary[i % vocabulary.length]).join(" ")}`;
}
const CREATED = Math.floor(Date.now() / 1000);

/** Parsed options per model string; the set of model strings in a run is tiny. */
const optionsCache = new Map();
function optionsFor(model) {
  let options = optionsCache.get(model);
  if (options === undefined) {
    const query = model.includes("?") ? new URLSearchParams(model.slice(model.indexOf("?") + 1)) : new URLSearchParams();
    options = { ...DEFAULTS };
    for (const key of Object.keys(DEFAULTS)) {
      const value = query.get(key);
      if (value !== null && Number.isFinite(Number(value))) options[key] = Number(value);
    }
    options.unaryBody = JSON.stringify({
      id: "chatcmpl-bench",
      object: "chat.completion",
      created: CREATED,
      model,
      choices: [
        {
          index: 0,
          message: { role: "assistant", content: answerText(options.words), refusal: null },
          logprobs: null,
          finish_reason: "stop",
        },
      ],
      usage: {
        prompt_tokens: 9,
        completion_tokens: options.words || 9,
        total_tokens: 9 + (options.words || 9),
      },
    });
    // The chunk is split around the timestamp so each write costs one concatenation.
    const head = JSON.stringify({ id: "chatcmpl-bench", object: "chat.completion.chunk", created: CREATED, model });
    options.chunkPrefix = `data: ${head.slice(0, -1)},"choices":[{"index":0,"delta":{`;
    options.tail =
      `data: ${head.slice(0, -1)},"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n` +
      `data: ${head.slice(0, -1)},"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":${options.chunks},"total_tokens":${9 + options.chunks}}}\n\n` +
      "data: [DONE]\n\n";
    optionsCache.set(model, options);
  }
  return options;
}

function contentChunk(options, first) {
  // The first chunk carries the role, as OpenAI's does.
  const role = first ? '"role":"assistant",' : "";
  return `${options.chunkPrefix}${role}"content":"t${process.hrtime.bigint()} "},"finish_reason":null}]}\n\n`;
}

function sendJson(res, status, body) {
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

/** Live counts for GET /stats: the capacity scenario checks that cancelled streams really end here. */
const stats = { activeStreams: 0, openConnections: 0 };

function stream(_req, res, options) {
  stats.activeStreams += 1;
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  // Headers go out at once, as a real provider's do; the first chunk follows after `first` ms.
  if (typeof res.flushHeaders === "function") res.flushHeaders();
  let sent = 0;
  let timer;
  const next = () => {
    timer = undefined;
    if (res.destroyed) return;
    res.write(contentChunk(options, sent === 0));
    sent += 1;
    if (sent >= options.chunks) {
      res.end(options.tail);
    } else if (options.gap > 0) {
      timer = setTimeout(next, options.gap);
    } else {
      next();
    }
  };
  // A cancelled client must not leave timers behind (capacity runs close 10k streams at once).
  res.on("close", () => {
    stats.activeStreams -= 1;
    if (timer !== undefined) clearTimeout(timer);
  });
  if (options.first > 0) timer = setTimeout(next, options.first);
  else next();
}

function handle(req, res) {
  if (req.method === "GET" && req.url === "/stats") {
    sendJson(res, 200, JSON.stringify(stats));
    return;
  }
  if (req.method !== "POST" || !req.url.endsWith("/chat/completions")) {
    sendJson(res, 404, '{"error":{"message":"not found","type":"invalid_request_error"}}');
    return;
  }
  const parts = [];
  req.on("data", (part) => parts.push(part));
  req.on("end", () => {
    let body;
    try {
      body = JSON.parse(Buffer.concat(parts).toString("utf8"));
    } catch {
      sendJson(res, 400, '{"error":{"message":"bad json","type":"invalid_request_error"}}');
      return;
    }
    const options = optionsFor(typeof body.model === "string" ? body.model : "fake");
    if (body.stream === true) {
      stream(req, res, options);
    } else if (options.delay > 0) {
      setTimeout(() => sendJson(res, 200, options.unaryBody), options.delay);
    } else {
      sendJson(res, 200, options.unaryBody);
    }
  });
}

// Node's default idle keep-alive (5 s), which undici reads from the Keep-Alive header and honours:
// idle upstream sockets left after a load (e.g. replacements for aborted streams) close soon after.
const h1 = http.createServer({ keepAliveTimeout: 5_000, requestTimeout: 0 }, handle);
// keepAliveTimeout only starts after a response: a connection that never carries a request (undici
// opens one to replace each aborted connection) would stay forever. Real servers close those
// (nginx: client_header_timeout 60 s); 30 s of silence here — far above the slowest stream's gap.
h1.timeout = 30_000;
h1.on("connection", (socket) => {
  stats.openConnections += 1;
  socket.once("close", () => (stats.openConnections -= 1));
});
const h2 = http2.createServer({ settings: { maxConcurrentStreams: 100_000 } }, handle);

function listen(server, port) {
  return new Promise((resolve) => server.listen(Number(port), "127.0.0.1", () => resolve(server.address().port)));
}

const [h1Port, h2Port] = await Promise.all([listen(h1, args.port), listen(h2, args["h2-port"])]);
process.stdout.write(
  `${JSON.stringify({ msg: "fake listening", url: `http://127.0.0.1:${h1Port}`, h2Url: `http://127.0.0.1:${h2Port}` })}\n`,
);
process.on("SIGTERM", () => process.exit(0));
process.on("SIGINT", () => process.exit(0));
