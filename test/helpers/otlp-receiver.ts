import { once } from "node:events";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { BinaryReader, type WireType } from "@bufbuild/protobuf/wire";

/** An attribute value as OTLP carries it (int64 as a number: the values here are small). */
export type OtlpValue = string | number | boolean | OtlpValue[] | undefined;

/** One exported span, decoded from OTLP (protobuf or JSON) into one shape. Ids are hex. */
export interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  /** "" for a root span. */
  readonly parentSpanId: string;
  readonly traceState: string;
  readonly name: string;
  /** OTLP SpanKind: 2 SERVER, 3 CLIENT. */
  readonly kind: number;
  readonly attributes: Readonly<Record<string, OtlpValue>>;
  readonly events: ReadonlyArray<{ readonly name: string; readonly attributes: Readonly<Record<string, OtlpValue>> }>;
  /** OTLP StatusCode: 0 unset, 1 ok, 2 error. */
  readonly status: { readonly code: number; readonly message: string };
  readonly resource: Readonly<Record<string, OtlpValue>>;
  readonly scope: string;
}

export const spanKind = { server: 2, client: 3 } as const;
export const statusCode = { unset: 0, ok: 1, error: 2 } as const;

export interface ExportRequest {
  readonly contentType: string;
  readonly headers: IncomingHttpHeaders;
  readonly spans: readonly ReceivedSpan[];
}

export interface OtlpReceiver {
  /** The base URL to configure as the OTLP endpoint (http://127.0.0.1:PORT). */
  readonly endpoint: string;
  /** Every export request received, decoded. */
  readonly requests: ExportRequest[];
  /** Every span received so far, in arrival order. */
  spans(): ReceivedSpan[];
  close(): Promise<void>;
}

/**
 * A real OTLP/HTTP trace receiver on loopback, as a collector would be: POST /v1/traces
 * with `application/x-protobuf` or `application/json`, answered with an empty
 * ExportTraceServiceResponse. Each request is decoded here — protobuf by its field numbers
 * (opentelemetry/proto/trace/v1/trace.proto), JSON as the OTLP JSON mapping — so a test
 * reads exactly what left the gateway.
 */
export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const requests: ExportRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const contentType = req.headers["content-type"] ?? "";
      if (req.method !== "POST" || req.url !== "/v1/traces") {
        res.writeHead(404).end();
        return;
      }
      const json = contentType.startsWith("application/json");
      requests.push({
        contentType,
        headers: req.headers,
        spans: json ? fromJson(JSON.parse(body.toString("utf8"))) : fromProto(body),
      });
      res.writeHead(200, { "content-type": json ? "application/json" : "application/x-protobuf" });
      res.end(json ? "{}" : Buffer.alloc(0));
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    spans: () => requests.flatMap((request) => request.spans),
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    },
  };
}

// --- protobuf --------------------------------------------------------------------------

/** Calls `field` for each field of the message in `bytes`; unread fields are skipped. */
function readFields(bytes: Uint8Array, field: (no: number, reader: BinaryReader, wireType: WireType) => boolean): void {
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [no, wireType] = reader.tag();
    if (!field(no, reader, wireType)) reader.skip(wireType, no);
  }
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");

function fromProto(body: Uint8Array): ReceivedSpan[] {
  const spans: ReceivedSpan[] = [];
  readFields(body, (no, reader) => {
    if (no !== 1) return false;
    const resource: Record<string, OtlpValue> = {};
    const scopes: Array<{ scope: string; spans: Uint8Array[] }> = [];
    readFields(reader.bytes(), (rsNo, rs) => {
      if (rsNo === 1) {
        readFields(rs.bytes(), (rNo, r) => {
          if (rNo !== 1) return false;
          Object.assign(resource, keyValue(r.bytes()));
          return true;
        });
        return true;
      }
      if (rsNo === 2) {
        const scope = { scope: "", spans: [] as Uint8Array[] };
        readFields(rs.bytes(), (ssNo, ss) => {
          if (ssNo === 1) {
            readFields(ss.bytes(), (sNo, s) => {
              if (sNo !== 1) return false;
              scope.scope = s.string();
              return true;
            });
          } else if (ssNo === 2) scope.spans.push(ss.bytes());
          else return false;
          return true;
        });
        scopes.push(scope);
        return true;
      }
      return false;
    });
    for (const scope of scopes) for (const span of scope.spans) spans.push(protoSpan(span, resource, scope.scope));
    return true;
  });
  return spans;
}

function protoSpan(bytes: Uint8Array, resource: Record<string, OtlpValue>, scope: string): ReceivedSpan {
  const span = {
    traceId: "",
    spanId: "",
    parentSpanId: "",
    traceState: "",
    name: "",
    kind: 0,
    attributes: {} as Record<string, OtlpValue>,
    events: [] as Array<{ name: string; attributes: Record<string, OtlpValue> }>,
    status: { code: 0, message: "" },
    resource,
    scope,
  };
  readFields(bytes, (no, r) => {
    if (no === 1) span.traceId = hex(r.bytes());
    else if (no === 2) span.spanId = hex(r.bytes());
    else if (no === 3) span.traceState = r.string();
    else if (no === 4) span.parentSpanId = hex(r.bytes());
    else if (no === 5) span.name = r.string();
    else if (no === 6) span.kind = r.int32();
    else if (no === 9) Object.assign(span.attributes, keyValue(r.bytes()));
    else if (no === 11) {
      const event = { name: "", attributes: {} as Record<string, OtlpValue> };
      readFields(r.bytes(), (eNo, e) => {
        if (eNo === 2) event.name = e.string();
        else if (eNo === 3) Object.assign(event.attributes, keyValue(e.bytes()));
        else return false;
        return true;
      });
      span.events.push(event);
    } else if (no === 15) {
      readFields(r.bytes(), (sNo, s) => {
        if (sNo === 2) span.status.message = s.string();
        else if (sNo === 3) span.status.code = s.int32();
        else return false;
        return true;
      });
    } else return false;
    return true;
  });
  return span;
}

/** A KeyValue message as a one-entry record. */
function keyValue(bytes: Uint8Array): Record<string, OtlpValue> {
  let key = "";
  let value: OtlpValue;
  readFields(bytes, (no, r) => {
    if (no === 1) key = r.string();
    else if (no === 2) value = anyValue(r.bytes());
    else return false;
    return true;
  });
  return { [key]: value };
}

function anyValue(bytes: Uint8Array): OtlpValue {
  let value: OtlpValue;
  readFields(bytes, (no, r) => {
    if (no === 1) value = r.string();
    else if (no === 2) value = r.bool();
    else if (no === 3) value = Number(r.int64());
    else if (no === 4) value = r.double();
    else if (no === 5) {
      const values: OtlpValue[] = [];
      readFields(r.bytes(), (aNo, a) => {
        if (aNo !== 1) return false;
        values.push(anyValue(a.bytes()));
        return true;
      });
      value = values;
    } else return false;
    return true;
  });
  return value;
}

// --- JSON ------------------------------------------------------------------------------

interface JsonKeyValue {
  key: string;
  value: JsonAnyValue;
}
interface JsonAnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: number | string;
  doubleValue?: number;
  arrayValue?: { values?: JsonAnyValue[] };
}

function jsonAttributes(list: JsonKeyValue[] | undefined): Record<string, OtlpValue> {
  const out: Record<string, OtlpValue> = {};
  for (const { key, value } of list ?? []) out[key] = jsonValue(value);
  return out;
}

function jsonValue(value: JsonAnyValue): OtlpValue {
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.boolValue !== undefined) return value.boolValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  if (value.doubleValue !== undefined) return value.doubleValue;
  if (value.arrayValue !== undefined) return (value.arrayValue.values ?? []).map(jsonValue);
  return undefined;
}

// biome-ignore lint/suspicious/noExplicitAny: the OTLP JSON document, read field by field
function fromJson(document: any): ReceivedSpan[] {
  const spans: ReceivedSpan[] = [];
  for (const rs of document.resourceSpans ?? []) {
    const resource = jsonAttributes(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        spans.push({
          traceId: s.traceId ?? "",
          spanId: s.spanId ?? "",
          parentSpanId: s.parentSpanId ?? "",
          traceState: s.traceState ?? "",
          name: s.name ?? "",
          kind: s.kind ?? 0,
          attributes: jsonAttributes(s.attributes),
          // biome-ignore lint/suspicious/noExplicitAny: as above
          events: (s.events ?? []).map((e: any) => ({ name: e.name ?? "", attributes: jsonAttributes(e.attributes) })),
          status: { code: s.status?.code ?? 0, message: s.status?.message ?? "" },
          resource,
          scope: ss.scope?.name ?? "",
        });
      }
    }
  }
  return spans;
}
