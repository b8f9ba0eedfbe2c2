export interface UsageBuckets {
  readonly day: string;
  readonly month: string;
}

const dayMs = 86_400_000;
/** The last day asked for: nearly every call falls in the same day as the one before it. */
let last: { readonly start: number; readonly buckets: UsageBuckets } | undefined;

/** The UTC day (`YYYY-MM-DD`) and month (`YYYY-MM`) an instant falls in: the periods of budgets and usage. */
export function usageBuckets(at: number): UsageBuckets {
  const start = at - (at % dayMs);
  if (last !== undefined && last.start === start) return last.buckets;
  const iso = new Date(at).toISOString();
  const buckets = { day: iso.slice(0, 10), month: iso.slice(0, 7) };
  last = { start, buckets };
  return buckets;
}

/** When the UTC day or month holding `at` ends (epoch ms): a budget of that period refuses until then. */
export function periodEnd(at: number, period: "day" | "month"): number {
  const date = new Date(at);
  return period === "day"
    ? Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate() + 1)
    : Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 1);
}
