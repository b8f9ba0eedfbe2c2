/** The UTC day (`YYYY-MM-DD`) and month (`YYYY-MM`) an instant falls in: the periods of budgets and usage. */
export function usageBuckets(at: number): { readonly day: string; readonly month: string } {
  const iso = new Date(at).toISOString();
  return { day: iso.slice(0, 10), month: iso.slice(0, 7) };
}

/** When the UTC day or month holding `at` ends (epoch ms): a budget of that period refuses until then. */
export function periodEnd(at: number, period: "day" | "month"): number {
  const date = new Date(at);
  return period === "day"
    ? Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate() + 1)
    : Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 1);
}
