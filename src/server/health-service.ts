import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, type ServiceImpl } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthCheckResponseSchema,
  HealthListResponseSchema,
  type HealthCheckResponse,
} from "../../gen/grpc/health/v1/health_pb.js";

export { ServingStatus };

/** The path of Health.Watch: a call that lasts as long as its caller wants, so drain does not wait for it. */
export const healthWatchPath = `/${Health.typeName}/${Health.method.watch.name}`;

export interface HealthServiceOptions {
  /** Fully qualified names of the services served; `""` (the server as a whole) is always added. */
  readonly services: readonly string[];
}

/**
 * The standard grpc.health.v1.Health, so Kubernetes gRPC probes, grpc_health_probe and
 * load balancers can ask about Sluice with no custom code.
 */
export interface HealthService {
  register(router: ConnectRouter): void;
  readonly impl: ServiceImpl<typeof Health>;
  /** The current status, or undefined for a service that is not registered. */
  status(service: string): ServingStatus | undefined;
  /** Sets (or registers) a service's status; Watch callers see the change. Ignored once draining. */
  setStatus(service: string, status: ServingStatus): void;
  /** Every service NOT_SERVING, for good: the server is going away. */
  drain(): void;
}

/**
 * Builds the health service with every named service SERVING. Watch streams send the
 * current status at once, then each change, until the call ends (caller gone, or the
 * server's shutdown signal, which ends it with that signal's error).
 */
export function createHealthService(options: HealthServiceOptions): HealthService {
  const statuses = new Map<string, ServingStatus>();
  for (const service of ["", ...options.services]) statuses.set(service, ServingStatus.SERVING);
  const watchers = new Set<(service: string) => void>();
  let draining = false;

  function set(service: string, status: ServingStatus): void {
    if (statuses.get(service) === status) return;
    statuses.set(service, status);
    for (const notify of watchers) notify(service);
  }

  const impl: ServiceImpl<typeof Health> = {
    check(request) {
      const status = statuses.get(request.service);
      if (status === undefined) throw new ConnectError(`unknown service "${request.service}"`, Code.NotFound);
      return { status };
    },

    list() {
      const out: Record<string, HealthCheckResponse> = {};
      for (const [service, status] of statuses) out[service] = create(HealthCheckResponseSchema, { status });
      return create(HealthListResponseSchema, { statuses: out });
    },

    async *watch(request, context) {
      const { signal } = context;
      let wake: (() => void) | undefined;
      let changed = false;
      const notify = (service: string): void => {
        if (service !== request.service) return;
        changed = true;
        wake?.();
      };
      const onAbort = (): void => wake?.();
      watchers.add(notify);
      signal.addEventListener("abort", onAbort);
      try {
        let sent = statuses.get(request.service) ?? ServingStatus.SERVICE_UNKNOWN;
        yield { status: sent };
        for (;;) {
          // Waits for a change or the end of the call; a burst of changes is coalesced
          // into the latest status, as the health protocol allows.
          if (!changed && !signal.aborted) await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
          if (signal.aborted) throw ConnectError.from(signal.reason ?? new Error("watch ended"), Code.Canceled);
          changed = false;
          const now = statuses.get(request.service) ?? ServingStatus.SERVICE_UNKNOWN;
          if (now !== sent) {
            sent = now;
            yield { status: now };
          }
        }
      } finally {
        watchers.delete(notify);
        signal.removeEventListener("abort", onAbort);
      }
    },
  };

  return {
    impl,
    register(router) {
      router.service(Health, impl);
    },
    status(service) {
      return statuses.get(service);
    },
    setStatus(service, status) {
      if (!draining) set(service, status);
    },
    drain() {
      for (const service of statuses.keys()) set(service, ServingStatus.NOT_SERVING);
      draining = true;
    },
  };
}
