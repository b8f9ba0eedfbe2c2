import type { IncomingHttpHeaders } from "node:http";
import type { ContextKey, ContextValues } from "@connectrpc/connect";

/**
 * A call's request headers as the `Headers` connect gives interceptors and implementations,
 * copied from node's header object only when first used. Most calls never look at a
 * header (it costs a `Headers` fill of every header otherwise); a call that does sees
 * exactly what connect-node would give it. It is a real `Headers` (instanceof, brand
 * checks, `new Headers(it)`), so it can be an own data property of the interceptor
 * request: a spread copy (`{ ...req, message }`) keeps it, as it keeps connect-node's.
 * Every method that reads or writes fills it first (call-request-headers.test.ts).
 */
export function callRequestHeaders(source: IncomingHttpHeaders): Headers {
  return new CallRequestHeaders(source) as unknown as Headers;
}

/**
 * `Headers` as a class with methods: the DOM typings declare its members as properties,
 * which a subclass cannot override with methods (TS2425) or reach through `super`.
 */
interface HeadersMethods {
  get(name: string): string | null;
  has(name: string): boolean;
  getSetCookie(): string[];
  set(name: string, value: string): void;
  append(name: string, value: string): void;
  delete(name: string): void;
  forEach(callback: (value: string, key: string, parent: Headers) => void, thisArg?: unknown): void;
  keys(): IterableIterator<string>;
  values(): IterableIterator<string>;
  entries(): IterableIterator<[string, string]>;
  [Symbol.iterator](): IterableIterator<[string, string]>;
}
const HeadersBase = Headers as unknown as new () => HeadersMethods;

/** An HTTP field name (RFC 9110 token); pseudo-headers (`:path`) are not. */
const headerToken = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

class CallRequestHeaders extends HeadersBase {
  private source: IncomingHttpHeaders | undefined;

  constructor(source: IncomingHttpHeaders) {
    super();
    this.source = source;
  }

  /** Copies node's headers in, once. HTTP/2 pseudo-headers (`:path`…) are not headers. */
  private fill(): void {
    const source = this.source;
    if (source === undefined) return;
    this.source = undefined;
    for (const key in source) {
      if (key.charCodeAt(0) === 58 /* ':' */) continue;
      const value = source[key];
      if (value === undefined) continue;
      if (Array.isArray(value)) for (const item of value) super.append(key, item);
      else super.set(key, value);
    }
  }

  // Reads of one header (content type, request id, trace context: every call makes a few)
  // answer from node's object while nothing was written: no fill of every header. A name
  // Headers would reject, or a repeated header (an array), takes the filling path, so the
  // answer and any error are exactly Headers'.
  override get(name: string): string | null {
    const source = this.source;
    if (source !== undefined && headerToken.test(name)) {
      const value = source[name.toLowerCase()];
      if (value === undefined) return null;
      if (typeof value === "string") return value;
    }
    this.fill();
    return super.get(name);
  }

  override has(name: string): boolean {
    const source = this.source;
    if (source !== undefined && headerToken.test(name)) return source[name.toLowerCase()] !== undefined;
    this.fill();
    return super.has(name);
  }

  override getSetCookie(): string[] {
    this.fill();
    return super.getSetCookie();
  }

  override set(name: string, value: string): void {
    this.fill();
    super.set(name, value);
  }

  override append(name: string, value: string): void {
    this.fill();
    super.append(name, value);
  }

  override delete(name: string): void {
    this.fill();
    super.delete(name);
  }

  override forEach(callback: (value: string, key: string, parent: Headers) => void, thisArg?: unknown): void {
    this.fill();
    super.forEach(callback, thisArg);
  }

  override keys(): IterableIterator<string> {
    this.fill();
    return super.keys();
  }

  override values(): IterableIterator<string> {
    this.fill();
    return super.values();
  }

  override entries(): IterableIterator<[string, string]> {
    this.fill();
    return super.entries();
  }

  override [Symbol.iterator](): IterableIterator<[string, string]> {
    this.fill();
    return super[Symbol.iterator]();
  }
}

/**
 * connect's context values (`createContextValues`) as a class: one object per call with
 * its methods on the prototype, where the object literal defines three functions per call.
 */
export class CallValues implements ContextValues {
  get<T>(key: ContextKey<T>): T {
    return key.id in this ? (this as unknown as Record<symbol, T>)[key.id]! : key.defaultValue;
  }

  set<T>(key: ContextKey<T>, value: T): this {
    (this as unknown as Record<symbol, T>)[key.id] = value;
    return this;
  }

  delete(key: ContextKey<unknown>): this {
    delete (this as unknown as Record<symbol, unknown>)[key.id];
    return this;
  }
}
