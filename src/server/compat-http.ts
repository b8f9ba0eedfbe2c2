import type { FastCall, NodeResponse } from "./fast-call.js";

/**
 * What the HTTP compatibility lanes (OpenAI's and Anthropic's) share: plain JSON answers,
 * the call's headers, the SSE response head.
 */

/** `application/json`, optionally with a UTF-8 charset. */
export const jsonContentType = /^application\/json(?:;\s*charset=utf-?8)?$/i;

/** The route table's key for an RPC: `/package.Service/Method`. */
export function rpcPathOf(method: { readonly parent: { readonly typeName: string }; readonly name: string }): string {
  return `/${method.parent.typeName}/${method.name}`;
}

/** The path of a request URL, without its query. */
export function pathOf(url: string | undefined): string {
  const value = url ?? "";
  const query = value.indexOf("?");
  return query === -1 ? value : value.slice(0, query);
}

/** The headers the chain and the service set (request id, `x-ratelimit-*`, `sluice-*`), trailers included. */
export function collectHeaders(call: FastCall | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (call === undefined) return out;
  const copy = (value: string, key: string): void => {
    out[key] = value;
  };
  call.responseHeaders()?.forEach(copy);
  call.responseTrailers()?.forEach(copy);
  return out;
}

/** A JSON answer with its length. Nothing when the caller is gone. */
export function answerJson(res: NodeResponse, status: number, headers: Record<string, string>, body: string): void {
  if (res.destroyed) return;
  headers["content-type"] = "application/json";
  headers["content-length"] = String(Buffer.byteLength(body));
  res.writeHead(status, headers);
  res.end(body);
}

/** Adds the head of a server-sent events response to `headers`. */
export function sseHeaders(headers: Record<string, string>): Record<string, string> {
  headers["content-type"] = "text/event-stream; charset=utf-8";
  headers["cache-control"] = "no-cache";
  // nginx and its kin buffer responses unless told not to: a stream must not wait in a proxy.
  headers["x-accel-buffering"] = "no";
  return headers;
}
