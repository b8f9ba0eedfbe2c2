import type { WindowCharge, WindowState } from "../state/state-store.js";
import type { LimitName } from "./quota-errors.js";

/**
 * The `x-ratelimit-*` headers of an answer (OpenAI's names, so SDKs and dashboards that
 * read them work unchanged): for requests and for tokens, the limit, what is left and when
 * the window is entirely free again, from the most constrained window the call was
 * counted in (tenant, key or model). Reset is a duration: `850ms`, `12s`.
 */
export function rateLimitHeaders(
  windows: readonly WindowCharge[],
  limits: readonly LimitName[],
  states: readonly WindowState[],
): [string, string][] {
  const headers: [string, string][] = [];
  for (const [limit, suffix] of [
    ["requests_per_minute", "requests"],
    ["tokens_per_minute", "tokens"],
  ] as const) {
    let tightest = -1;
    for (let i = 0; i < states.length; i++) {
      if (limits[i] !== limit) continue;
      if (tightest === -1 || states[i]!.remaining < states[tightest]!.remaining) tightest = i;
    }
    if (tightest === -1) continue;
    const state = states[tightest]!;
    headers.push(
      [`x-ratelimit-limit-${suffix}`, String(windows[tightest]!.limit)],
      [`x-ratelimit-remaining-${suffix}`, String(Math.max(0, state.remaining))],
      [`x-ratelimit-reset-${suffix}`, duration(state.resetMs)],
    );
  }
  return headers;
}

function duration(ms: number): string {
  return ms < 1_000 ? `${Math.max(0, Math.ceil(ms))}ms` : `${Math.ceil(ms / 1_000)}s`;
}
