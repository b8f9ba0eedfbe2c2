/** Longest label value kept from text someone else controls; longer values are cut (the series stays one). */
const maxValueLength = 120;

/**
 * Series keyed by text Sluice does not control — the model a provider reports, the class
 * of an error — so the number of series must be capped: the first `max` distinct values
 * get a series each, every later one shares the series labelled "other". A provider that
 * starts answering with a new model version shows as a new value (up to the cap); one
 * that puts a request id in its model field cannot grow the exposition without bound.
 */
export class CappedSeries<S> {
  private readonly seen = new Map<string, S>();
  private other: S | undefined = undefined;

  constructor(
    private readonly max: number,
    private readonly make: (value: string) => S,
  ) {}

  /** The series of `value`: one Map lookup when already seen. */
  get(value: string): S {
    const found = this.seen.get(value);
    if (found !== undefined) return found;
    if (this.seen.size >= this.max) return (this.other ??= this.make("other"));
    const series = this.make(value.length > maxValueLength ? value.slice(0, maxValueLength) : value);
    this.seen.set(value, series);
    return series;
  }
}
