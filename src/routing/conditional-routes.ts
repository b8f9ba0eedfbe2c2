/**
 * Conditional routes: gray release and A/B tests. A model alias may list rules; the first
 * rule whose every condition holds names the deployments serving the request, which the
 * alias's strategy then orders. No match → the alias's full deployment list.
 *
 * Examples: `{ match: { headers: { "x-canary": "1" } }, deployments: ["openai/gpt-5"] }`
 * sends opted-in callers to a new deployment; `{ match: { tenant: "acme" }, … }` pins a
 * tenant. Percentage ramps are weights on the strategy, not routes.
 */

export interface RouteMatch {
  /** Every entry must equal the request's metadata value exactly. */
  readonly metadata?: Readonly<Record<string, string>>;
  /** Every entry must equal the request header's value exactly; names are case-insensitive. */
  readonly headers?: Readonly<Record<string, string>>;
  /** The authenticated tenant must be this one. */
  readonly tenant?: string;
}

export interface ConditionalRoute {
  /** An empty match (no conditions) matches every request: a catch-all, useful last. */
  readonly match: RouteMatch;
  /** Deployment keys ("provider/model"). */
  readonly deployments: readonly string[];
}

export interface RouteRequest {
  readonly metadata: Readonly<Record<string, string>>;
  /** Header lookup; always called with a lower-case name (HTTP/2 and node:http use lower case). */
  readonly headers: (name: string) => string | undefined;
  readonly tenant?: string;
}

/**
 * The deployment keys of the first route whose every condition matches, or undefined.
 * Returns the route's own (readonly) array: no copy per request. For the hot path prefer
 * {@link createRouteSelector}, which lower-cases header names once instead of per call.
 */
export function selectRoute(routes: readonly ConditionalRoute[], request: RouteRequest): readonly string[] | undefined {
  for (const route of routes) {
    if (matches(route.match, request, false)) return route.deployments;
  }
  return undefined;
}

/**
 * Compiles routes once (config load): header names lower-cased and entries flattened,
 * so selecting allocates nothing. Same semantics as {@link selectRoute}.
 */
export function createRouteSelector(
  routes: readonly ConditionalRoute[],
): (request: RouteRequest) => readonly string[] | undefined {
  const compiled = routes.map((route) => ({
    match: {
      ...route.match,
      ...(route.match.headers === undefined
        ? {}
        : {
            headers: Object.fromEntries(Object.entries(route.match.headers).map(([name, value]) => [name.toLowerCase(), value])),
          }),
    } satisfies RouteMatch,
    deployments: route.deployments,
  }));
  if (compiled.length === 0) return () => undefined;
  return function selectCompiledRoute(request: RouteRequest): readonly string[] | undefined {
    for (const route of compiled) {
      if (matches(route.match, request, true)) return route.deployments;
    }
    return undefined;
  };
}

function matches(match: RouteMatch, request: RouteRequest, headersLowerCased: boolean): boolean {
  if (match.tenant !== undefined && request.tenant !== match.tenant) return false;
  const { metadata, headers } = match;
  if (metadata !== undefined) {
    for (const key in metadata) {
      // Own properties only: a key like "constructor" must not match the prototype's.
      if (!Object.hasOwn(request.metadata, key) || request.metadata[key] !== metadata[key]) return false;
    }
  }
  if (headers !== undefined) {
    for (const name in headers) {
      const value = request.headers(headersLowerCased ? name : name.toLowerCase());
      if (value !== headers[name]) return false;
    }
  }
  return true;
}
