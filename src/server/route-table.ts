import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter, Interceptor, MethodImplSpec } from "@connectrpc/connect";

/**
 * What the server serves: the one list of RPCs (connect's own `MethodImplSpec`: kind,
 * method descriptor, implementation) and the one interceptor chain applied to every one
 * of them. connect-node's router and every fast lane read this same table, so an RPC or a
 * cross-cutting step is added once and served the same way over every protocol.
 */
export interface RouteTable {
  /** The services the RPCs belong to (health and reflection list them). */
  readonly services: readonly DescService[];
  readonly rpcs: readonly MethodImplSpec[];
  /** Outermost first. */
  readonly interceptors: readonly Interceptor[];
}

/** Registers every RPC of the table, behind its interceptors, on a connect router. */
export function registerRouteTable(router: ConnectRouter, table: RouteTable): void {
  const options = { interceptors: [...table.interceptors] };
  for (const spec of table.rpcs) {
    switch (spec.kind) {
      case "unary":
        router.rpc(spec.method, spec.impl, options);
        break;
      case "server_streaming":
        router.rpc(spec.method, spec.impl, options);
        break;
      case "client_streaming":
        router.rpc(spec.method, spec.impl, options);
        break;
      case "bidi_streaming":
        router.rpc(spec.method, spec.impl, options);
        break;
    }
  }
}

/** The HTTP path of an RPC: `/package.Service/Method`. */
export function rpcPath(spec: MethodImplSpec): string {
  return `/${spec.method.parent.typeName}/${spec.method.name}`;
}
