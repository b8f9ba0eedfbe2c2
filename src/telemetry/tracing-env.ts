/**
 * Reads the standard OTEL_* variables from the environment a gateway was given (not
 * process.env: tests run several gateways in one process, each with its own), the way the
 * OpenTelemetry SDK configuration spec reads them: an empty or blank value is unset. A
 * value that cannot be used is not fatal — the reader notes a problem (logged once at
 * startup) and the caller falls back to its default. Problems never quote a value that
 * may hold a secret (header values).
 */
export class TracingEnv {
  readonly problems: string[] = [];

  constructor(private readonly env: Readonly<Record<string, string | undefined>>) {}

  /** The trimmed value, or undefined when unset or blank. */
  string(name: string): string | undefined {
    const value = this.env[name]?.trim();
    return value === undefined || value === "" ? undefined : value;
  }

  /** The first of `names` that is set (signal-specific before generic). */
  first(...names: string[]): { name: string; value: string } | undefined {
    for (const name of names) {
      const value = this.string(name);
      if (value !== undefined) return { name, value };
    }
    return undefined;
  }

  /** "true" / "false" in any case; anything else is a problem and reads as false. */
  flag(name: string): boolean {
    const value = this.string(name)?.toLowerCase();
    if (value === undefined || value === "false") return false;
    if (value === "true") return true;
    this.problem(`${name}=${JSON.stringify(value)} is not "true" or "false"; read as false`);
    return false;
  }

  /** A number within [min, max] (integers only when `integer`); otherwise a problem and undefined. */
  number(name: string, range: { min: number; max?: number; integer?: boolean }): number | undefined {
    const raw = this.string(name);
    if (raw === undefined) return undefined;
    const value = Number(raw);
    const max = range.max ?? Number.MAX_SAFE_INTEGER;
    if (!Number.isFinite(value) || value < range.min || value > max || (range.integer === true && !Number.isInteger(value))) {
      const what = range.integer === true ? "an integer" : "a number";
      this.problem(`${name}=${JSON.stringify(raw)} is not ${what} from ${range.min} to ${range.max ?? "any"}; ignored`);
      return undefined;
    }
    return value;
  }

  /**
   * A `key=value,key2=value2` list (OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_HEADERS),
   * keys and values percent-decoded. A malformed entry is a problem naming its key only.
   */
  keyValues(name: string): Record<string, string> {
    const out: Record<string, string> = {};
    const raw = this.string(name);
    if (raw === undefined) return out;
    for (const entry of raw.split(",")) {
      if (entry.trim() === "") continue;
      const eq = entry.indexOf("=");
      const rawKey = (eq < 0 ? entry : entry.slice(0, eq)).trim();
      try {
        const key = decodeURIComponent(rawKey);
        if (eq <= 0 || key === "") throw new Error("no key=value");
        out[key] = decodeURIComponent(entry.slice(eq + 1).trim());
      } catch {
        this.problem(`${name}: entry ${JSON.stringify(rawKey.slice(0, 64))} is not key=value (percent-encoded); ignored`);
      }
    }
    return out;
  }

  problem(text: string): void {
    this.problems.push(text);
  }
}
