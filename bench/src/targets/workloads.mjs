// The request shapes a scenario sends. Each workload names the fake upstream's behaviour by
// model string (see servers/fake-upstream.mjs) and the Sluice alias configured to forward to
// exactly that model string, so every target asks the fake for the same thing.

/** @param {{ streamChunks: number, streamFirstMs: number, streamGapMs: number, capacityGapMs: number }} s */
export function workloads(s) {
  return {
    unary: { stream: false, model: "fake", alias: "bench" },
    "unary-d20": { stream: false, model: "fake?delay=20", alias: "bench-d20" },
    stream: {
      stream: true,
      model: `fake?chunks=${s.streamChunks}&first=${s.streamFirstMs}&gap=${s.streamGapMs}`,
      alias: "bench-stream",
      chunks: s.streamChunks,
    },
    // Long, slow streams: they must outlive the whole ramp (the client closes them at the end).
    capacity: {
      stream: true,
      model: `fake?chunks=100000&first=0&gap=${s.capacityGapMs}`,
      alias: "bench-capacity",
    },
  };
}

/** The OpenAI request body, as Sluice's OpenAI adapter would send it upstream. */
export function openaiBody(workload) {
  const body = { model: workload.model, messages: [{ role: "user", content: "Hello" }] };
  if (workload.stream) Object.assign(body, { stream: true, stream_options: { include_usage: true } });
  return Buffer.from(JSON.stringify(body));
}

/** The same request as Sluice's OpenAI-compatible route receives it (model = alias). */
export function openaiRouteBody(workload) {
  return openaiBody({ ...workload, model: workload.alias });
}

/** sluice.v1.CompleteRequest as Connect/proto3 JSON. */
export function sluiceRequestJson(workload) {
  return { model: workload.alias, messages: [{ role: "ROLE_USER", content: [{ text: "Hello" }] }] };
}

/** Connect and gRPC streaming framing: flags byte, uint32 big-endian length, payload. */
export function envelope(payload, flags = 0) {
  const frame = Buffer.alloc(5 + payload.length);
  frame.writeUInt8(flags, 0);
  frame.writeUInt32BE(payload.length, 1);
  payload.copy(frame, 5);
  return frame;
}
