// A sorted set of disjoint half-open integer ranges [start, end), adjacent ranges merged. Used for the
// received packet numbers (the source of SACK blocks), out-of-order stream bytes (reassembly) and the
// sender's record of selectively acknowledged stream bytes. Ranges live in two parallel Float64Arrays
// (values reach 2^53); the common in-order case appends to the last range in O(1), others cost a binary
// search plus a copyWithin over the (few) ranges above.

export class RangeSet {
  private starts: Float64Array;
  private ends: Float64Array;
  private n = 0;

  constructor(initialCapacity = 8) {
    this.starts = new Float64Array(initialCapacity);
    this.ends = new Float64Array(initialCapacity);
  }

  /** Number of disjoint ranges. */
  get count(): number {
    return this.n;
  }
  start(i: number): number {
    return this.starts[i]!;
  }
  end(i: number): number {
    return this.ends[i]!;
  }
  /** Smallest member, or NaN when empty. */
  min(): number {
    return this.n === 0 ? NaN : this.starts[0]!;
  }
  /** One past the largest member, or NaN when empty. */
  maxEnd(): number {
    return this.n === 0 ? NaN : this.ends[this.n - 1]!;
  }
  isEmpty(): boolean {
    return this.n === 0;
  }
  clear(): void {
    this.n = 0;
  }

  /** Add [start, end); returns how many integers were not members before. */
  add(start: number, end: number): number {
    if (!(end > start)) return 0;
    const n = this.n;
    const starts = this.starts;
    const ends = this.ends;
    if (n === 0 || start > ends[n - 1]!) {
      this.insertAt(n, start, end);
      return end - start;
    }
    if (start === ends[n - 1]) {
      ends[n - 1] = end;
      return end - start;
    }
    // i: first range with end >= start (touching or overlapping from below)
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ends[mid]! >= start) hi = mid;
      else lo = mid + 1;
    }
    const i = lo;
    // j: last range with start <= end
    lo = i;
    hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (starts[mid]! <= end) lo = mid + 1;
      else hi = mid;
    }
    const j = lo - 1;
    if (j < i) {
      this.insertAt(i, start, end);
      return end - start;
    }
    let covered = 0;
    for (let k = i; k <= j; k++) covered += ends[k]! - starts[k]!;
    const newStart = start < starts[i]! ? start : starts[i]!;
    const newEnd = end > ends[j]! ? end : ends[j]!;
    starts[i] = newStart;
    ends[i] = newEnd;
    if (j > i) {
      starts.copyWithin(i + 1, j + 1, n);
      ends.copyWithin(i + 1, j + 1, n);
      this.n = n - (j - i);
    }
    return newEnd - newStart - covered;
  }

  /** True when x is a member. */
  has(x: number): boolean {
    const i = this.indexOfRangeEndingAfter(x);
    return i < this.n && this.starts[i]! <= x;
  }

  /** True when every integer of [start, end) is a member. */
  covers(start: number, end: number): boolean {
    if (!(end > start)) return true;
    const i = this.indexOfRangeEndingAfter(start);
    return i < this.n && this.starts[i]! <= start && this.ends[i]! >= end;
  }

  /** Drop every member below x. */
  removeBelow(x: number): void {
    const n = this.n;
    if (n === 0 || this.starts[0]! >= x) return;
    const i = this.indexOfRangeEndingAfter(x);
    if (i < n && this.starts[i]! < x) this.starts[i] = x;
    if (i > 0) {
      this.starts.copyWithin(0, i, n);
      this.ends.copyWithin(0, i, n);
      this.n = n - i;
    }
  }

  /** Drop the lowest range (to bound memory when too many holes accumulate). */
  removeFirst(): void {
    if (this.n === 0) return;
    this.starts.copyWithin(0, 1, this.n);
    this.ends.copyWithin(0, 1, this.n);
    this.n--;
  }

  /** Members as [start, end) pairs, ascending (tests and diagnostics). */
  toArray(): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    for (let i = 0; i < this.n; i++) out.push([this.starts[i]!, this.ends[i]!]);
    return out;
  }

  /** Index of the first range whose end is > x (n when none). */
  private indexOfRangeEndingAfter(x: number): number {
    let lo = 0;
    let hi = this.n;
    const ends = this.ends;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ends[mid]! > x) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  private insertAt(i: number, start: number, end: number): void {
    const n = this.n;
    if (n === this.starts.length) {
      const cap = Math.max(8, n * 2);
      const s = new Float64Array(cap);
      const e = new Float64Array(cap);
      s.set(this.starts);
      e.set(this.ends);
      this.starts = s;
      this.ends = e;
    }
    if (i < n) {
      this.starts.copyWithin(i + 1, i, n);
      this.ends.copyWithin(i + 1, i, n);
    }
    this.starts[i] = start;
    this.ends[i] = end;
    this.n = n + 1;
  }
}
