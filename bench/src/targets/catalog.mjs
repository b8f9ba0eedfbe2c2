// The targets measured side by side, and how each one is asked for a workload.
//
// role: floor   — straight to the fake: what the load generator + fake cost alone
//       ceiling — the bare Node pass-through: the best a Node proxy can do
//       sluice  — Sluice over one protocol
//       peer    — another gateway (Portkey)
// proto decides the load generator: h1 → wrk, h2 → h2load. `floor` names the target an
// "added latency" is measured against (an h2load number is compared with an h2load floor).
import { BENCH_API_KEY } from "./servers.mjs";
import { envelope, openaiBody, openaiRouteBody, sluiceRequestJson } from "./workloads.mjs";

const JSON_HEADERS = { "content-type": "application/json" };
/** What every call to Sluice carries: the bench tenant's key (servers.mjs). */
const SLUICE_AUTH = { authorization: `Bearer ${BENCH_API_KEY}` };

/**
 * @param {object} servers  running servers: { fake, passThrough?, sluice?, portkey? } (absent = not started)
 * @param {object} work     the workloads (targets/workloads.mjs)
 * @param {(json: object) => Buffer} encodeGrpc  CompleteRequest JSON → binary protobuf
 */
export function buildTargets(servers, work, encodeGrpc) {
  const { fake, passThrough, sluice, sluiceTraced, sluiceCached, portkey } = servers;
  /** Sluice's Connect JSON request for a workload, to the Sluice at `base` (`extra`: more request fields). */
  const connectJson =
    (base, extra = {}) =>
    (name) => {
      const json = Buffer.from(JSON.stringify({ ...sluiceRequestJson(work[name]), ...extra }));
      return work[name].stream
        ? {
            url: `${base}/sluice.v1.ChatService/StreamComplete`,
            headers: { "content-type": "application/connect+json", "connect-protocol-version": "1", ...SLUICE_AUTH },
            body: envelope(json),
            streamMode: "connect",
          }
        : {
            url: `${base}/sluice.v1.ChatService/Complete`,
            headers: { ...JSON_HEADERS, "connect-protocol-version": "1", ...SLUICE_AUTH },
            body: json,
          };
    };
  const openai = (base, extraHeaders) => (name) => ({
    url: `${base}/v1/chat/completions`,
    headers: { ...JSON_HEADERS, authorization: "Bearer bench", ...extraHeaders },
    body: openaiBody(work[name]),
    streamMode: "sse",
  });
  return [
    {
      id: "direct",
      label: "direct (fake)",
      role: "floor",
      proto: "h1",
      floor: "direct",
      server: fake,
      request: openai(fake.url, {}),
    },
    {
      id: "direct-h2",
      label: "direct h2c (fake)",
      role: "floor",
      proto: "h2",
      floor: "direct-h2",
      server: fake,
      unaryOnly: true,
      request: (name) => ({ url: `${fake.h2Url}/v1/chat/completions`, headers: JSON_HEADERS, body: openaiBody(work[name]) }),
    },
    {
      id: "pass-through",
      label: "pass-through (node:http+undici)",
      role: "ceiling",
      proto: "h1",
      floor: "direct",
      server: passThrough,
      request: passThrough && openai(passThrough.url, {}),
    },
    {
      // The same pass-through behind node:http2 (h2c): what an HTTP/2 front end costs in Node
      // by itself — the fair ceiling for Sluice's gRPC lane.
      id: "pass-through-h2",
      label: "pass-through h2c (node:http2+undici)",
      role: "ceiling",
      proto: "h2",
      floor: "direct-h2",
      server: passThrough,
      unaryOnly: true,
      request: (name) => ({
        url: `${passThrough.h2Url}/v1/chat/completions`,
        headers: { ...JSON_HEADERS, authorization: "Bearer bench" },
        body: openaiBody(work[name]),
      }),
    },
    {
      id: "sluice-connect",
      label: "Sluice Connect JSON (h1)",
      role: "sluice",
      proto: "h1",
      floor: "direct",
      server: sluice,
      request: sluice && connectJson(sluice.url),
    },
    {
      // The production defaults plus span export: every call's server and attempt spans
      // exported over OTLP/HTTP (100% sampled) to a sink — what tracing costs when on.
      id: "sluice-connect-traced",
      label: "Sluice Connect JSON (h1), spans exported",
      role: "sluice",
      proto: "h1",
      floor: "direct",
      server: sluiceTraced,
      request: sluiceTraced && connectJson(sluiceTraced.url),
    },
    {
      // The production defaults plus the response cache, asked with temperature 0 (deterministic):
      // after the first call every request is a hit — what a hit costs against a pass-through.
      id: "sluice-connect-cached",
      label: "Sluice Connect JSON (h1), cache hits",
      role: "sluice",
      proto: "h1",
      floor: "direct",
      server: sluiceCached,
      request: sluiceCached && connectJson(sluiceCached.url, { temperature: 0 }),
    },
    {
      id: "sluice-grpc",
      label: "Sluice gRPC (h2c)",
      role: "sluice",
      proto: "h2",
      floor: "direct-h2",
      server: sluice,
      request: (name) => ({
        url: `${sluice.url}/sluice.v1.ChatService/${work[name].stream ? "StreamComplete" : "Complete"}`,
        headers: { "content-type": "application/grpc", te: "trailers", ...SLUICE_AUTH },
        body: envelope(encodeGrpc(sluiceRequestJson(work[name]))),
        streamMode: "grpc",
      }),
    },
    {
      id: "sluice-openai",
      label: "Sluice OpenAI route (h1)",
      role: "sluice",
      proto: "h1",
      floor: "direct",
      server: sluice,
      request: (name) => ({
        url: `${sluice.url}/v1/chat/completions`,
        headers: { ...JSON_HEADERS, ...SLUICE_AUTH },
        body: openaiRouteBody(work[name]),
        streamMode: "sse",
      }),
    },
    {
      id: "portkey",
      label: "Portkey 1.15.2",
      role: "peer",
      proto: "h1",
      floor: "direct",
      server: portkey,
      request: portkey && openai(portkey.url, { "x-portkey-provider": "openai", "x-portkey-custom-host": `${fake.url}/v1` }),
    },
  ];
}
