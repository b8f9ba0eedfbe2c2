import type { Metric, Registry } from "prom-client";

/** A series' label values by label name. Only bounded values: configured names, codes, capped provider text. */
export type LabelSet = Readonly<Record<string, string>>;

/** One counter or gauge series: a number the hot path adds to. */
export class ValueSeries {
  value = 0;
  constructor(readonly labels: LabelSet) {}
}

/**
 * One histogram series: per-bucket counts (not cumulative: one increment per observation;
 * cumulated at scrape time), the sum and the count.
 */
export class HistogramSeries {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    readonly labels: LabelSet,
    private readonly bounds: readonly number[],
  ) {
    // The last slot is +Inf.
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    // Linear: at most ~20 bounds, and most LLM values land in the first half.
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

/** A sample as prom-client's Registry formats it (the shape its own histograms hand it). */
interface Sample {
  readonly value: number;
  readonly labels: Readonly<Record<string, string | number>>;
  readonly sharedLabels?: LabelSet;
  readonly metricName?: string;
}

/**
 * A metric family whose series the hot path holds directly. prom-client's own metrics
 * hash the label values into a string on every observation (and its histograms look
 * buckets up by number-as-string key): with the ~13 recordings of a call that was 8 µs of
 * CPU per call, 11% of a bare pass-through's whole request (docs/metrics.md). Here a
 * series is found once per label tuple — by whoever resolves the call's labels — and an
 * observation is an array increment. prom-client still owns everything else: the Registry
 * per gateway, the text format and its escaping, the process metrics.
 *
 * Registered with the Registry like any prom-client metric: it calls `get()` (or
 * `getForPromString()`) at scrape time and formats the samples, and `reset()` from
 * `resetMetrics()`.
 */
abstract class SeriesFamily<S extends ValueSeries | HistogramSeries> {
  readonly aggregator = "sum";
  protected readonly all = new Map<string, S>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: "counter" | "gauge" | "histogram",
    readonly labelNames: readonly string[],
  ) {}

  protected abstract create(labels: LabelSet): S;
  protected abstract samples(series: S, into: Sample[]): void;

  /**
   * The series of one label tuple, created on first use. Builds a key string: call it once
   * per tuple and keep the series, never per observation.
   */
  series(labels: LabelSet): S {
    let key = "";
    for (const name of this.labelNames) key += `${labels[name] ?? ""}\u0000`;
    let series = this.all.get(key);
    if (series === undefined) {
      const own: Record<string, string> = {};
      for (const name of this.labelNames) own[name] = labels[name] ?? "";
      series = this.create(Object.freeze(own));
      this.all.set(key, series);
    }
    return series;
  }

  /** Joins `registry` (prom-client checks the name is not taken). */
  register(registry: Registry): this {
    registry.registerMetric(this as unknown as Metric);
    return this;
  }

  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Sample[] }> {
    const values: Sample[] = [];
    for (const series of this.all.values()) this.samples(series, values);
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** Forgets every series (prom-client's `registry.resetMetrics()`); series handed out before count on unseen. */
  reset(): void {
    this.all.clear();
  }
}

/** A counter (`series(labels).value += n`) or a gauge the hot path moves up and down. */
export class ValueFamily extends SeriesFamily<ValueSeries> {
  constructor(name: string, help: string, type: "counter" | "gauge", labelNames: readonly string[]) {
    super(name, help, type, labelNames);
  }
  protected create(labels: LabelSet): ValueSeries {
    return new ValueSeries(labels);
  }
  protected samples(series: ValueSeries, into: Sample[]): void {
    into.push({ value: series.value, labels: series.labels });
  }
}

/** A histogram family with fixed bounds: `series(labels).observe(v)`. */
export class HistogramFamily extends SeriesFamily<HistogramSeries> {
  private readonly bounds: readonly number[];
  /** `le` label objects, one per bound and +Inf, shared by every series. */
  private readonly les: readonly { le: string }[];

  constructor(name: string, help: string, labelNames: readonly string[], bounds: readonly number[]) {
    super(name, help, "histogram", labelNames);
    if (labelNames.includes("le")) throw new Error(`${name}: "le" is reserved for histogram buckets`);
    for (let i = 1; i < bounds.length; i++) {
      if (!(bounds[i]! > bounds[i - 1]!)) throw new Error(`${name}: bucket bounds must increase`);
    }
    this.bounds = bounds;
    this.les = [...bounds.map((bound) => ({ le: String(bound) })), { le: "+Inf" }];
  }

  protected create(labels: LabelSet): HistogramSeries {
    return new HistogramSeries(labels, this.bounds);
  }

  protected samples(series: HistogramSeries, into: Sample[]): void {
    const bucket = `${this.name}_bucket`;
    let cumulative = 0;
    for (let i = 0; i < this.les.length; i++) {
      cumulative += series.counts[i]!;
      // prom-client prints `labels` then `sharedLabels`: {le="0.1",alias="chat",...}.
      into.push({ value: cumulative, labels: this.les[i]!, sharedLabels: series.labels, metricName: bucket });
    }
    into.push({ value: series.sum, labels: {}, sharedLabels: series.labels, metricName: `${this.name}_sum` });
    into.push({ value: series.count, labels: {}, sharedLabels: series.labels, metricName: `${this.name}_count` });
  }
}
