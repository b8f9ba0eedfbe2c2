import { Gauge, type Registry } from "prom-client";

/** The gateway's state that metrics read at scrape time (nothing on the call path). */
export interface GatewayState {
  /** Breaker state per deployment that has a breaker yet ("closed" | "open" | "half-open"). */
  readonly breakerStates: () => Readonly<Record<string, string>>;
  /** In-flight attempts per deployment with a `maxInFlight`. */
  readonly inFlight: () => Readonly<Record<string, number>>;
  /** The process-wide retry budget's current window: retries granted, retries allowed. */
  readonly retryBudget?: (() => { readonly retries: number; readonly limit: number }) | undefined;
  /** Every configured deployment ("provider/model"): a breaker not created yet is reported closed. */
  readonly deployments: readonly string[];
}

const breakerStates = ["closed", "open", "half-open"] as const;

/**
 * Gauges read from the gateway when Prometheus scrapes: each deployment's breaker state
 * (one series per state, 1 for the current one — the usual enum encoding, so
 * `sluice_breaker_state{state="open"} == 1` selects open breakers), the in-flight
 * attempts of limited deployments, and the retry budget's use of its window. prom-client
 * Gauges with a `collect` hook: no work until a scrape.
 */
export function registerStateGauges(registry: Registry, state: GatewayState): void {
  new Gauge({
    name: "sluice_breaker_state",
    help: 'Circuit breaker state per deployment: 1 for the current state (closed, open, half-open), 0 for the others. An "open" deployment is skipped.',
    labelNames: ["deployment", "state"],
    registers: [registry],
    collect() {
      this.reset();
      const current = state.breakerStates();
      const deployments = new Set([...state.deployments, ...Object.keys(current)]);
      for (const deployment of deployments) {
        const now = current[deployment] ?? "closed";
        for (const candidate of breakerStates) this.set({ deployment, state: candidate }, candidate === now ? 1 : 0);
        // A state this list does not know is still shown rather than lost.
        if (!(breakerStates as readonly string[]).includes(now)) this.set({ deployment, state: now }, 1);
      }
    },
  });
  new Gauge({
    name: "sluice_deployment_in_flight",
    help: "Upstream attempts in flight per deployment with a maxInFlight (at the limit it is skipped).",
    labelNames: ["deployment"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [deployment, count] of Object.entries(state.inFlight())) this.set({ deployment }, count);
    },
  });
  const budget = state.retryBudget;
  if (budget === undefined) return;
  new Gauge({
    name: "sluice_retry_budget_window_retries",
    help: "Retries granted in the retry budget's current sliding window (process-wide).",
    registers: [registry],
    collect() {
      this.set(budget().retries);
    },
  });
  new Gauge({
    name: "sluice_retry_budget_window_limit",
    help: "Retries the retry budget allows in its current window (ratio x requests + floor); at it, retries are refused.",
    registers: [registry],
    collect() {
      this.set(budget().limit);
    },
  });
}
