// Kathleen Nichols' windowed min/max tracker as used by BBR (Linux lib/win_minmax.c): the best, second-best
// and third-best samples of a sliding window in O(1) per update, without storing the window.

export class WindowedMaxFilter {
  private v0 = 0;
  private t0 = 0;
  private v1 = 0;
  private t1 = 0;
  private v2 = 0;
  private t2 = 0;

  constructor(private readonly window: number) {}

  get best(): number {
    return this.v0;
  }

  reset(t: number, v: number): void {
    this.v0 = this.v1 = this.v2 = v;
    this.t0 = this.t1 = this.t2 = t;
  }

  /** Add sample `v` taken at time `t` (any monotonic unit: BBR uses round-trip counts). */
  update(t: number, v: number): number {
    if (v >= this.v0 || t - this.t2 > this.window) {
      this.reset(t, v);
      return v;
    }
    if (v >= this.v1) {
      this.v1 = this.v2 = v;
      this.t1 = this.t2 = t;
    } else if (v >= this.v2) {
      this.v2 = v;
      this.t2 = t;
    }
    // expire the best when it falls out of the window, promote the others (win_minmax.c minmax_subwin_update)
    const dt = t - this.t0;
    if (dt > this.window) {
      this.v0 = this.v1;
      this.t0 = this.t1;
      this.v1 = this.v2;
      this.t1 = this.t2;
      this.v2 = v;
      this.t2 = t;
      if (t - this.t0 > this.window) {
        this.v0 = this.v1;
        this.t0 = this.t1;
        this.v1 = this.v2;
        this.t1 = this.t2;
      }
    } else if (this.t1 === this.t0 && dt > this.window / 4) {
      this.v1 = this.v2 = v;
      this.t1 = this.t2 = t;
    } else if (this.t2 === this.t1 && dt > this.window / 2) {
      this.v2 = v;
      this.t2 = t;
    }
    return this.v0;
  }
}
