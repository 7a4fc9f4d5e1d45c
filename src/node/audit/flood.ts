// Policy denials can come by the thousand per second (a peer scanning ports): the audit log records the first
// few of each window one by one and folds the rest into one summary record per window, with a count per
// (node, port, network, rule). Sans-IO: the caller passes the time, asks when the window ends
// (pollDeadlineMs) and takes the summary out (pollSummary) — src/node/audit/log.ts arms the timer.

export interface DenialKey {
  node_id: number;
  port: number;
  network: string;
  rule: string;
}

export interface DenialSummary {
  since_ms: number;
  window_ms: number;
  /** Denials folded into this summary (not recorded one by one). */
  suppressed: number;
  /** Distinct (node, port, network, rule) among them. */
  distinct: number;
  /** The busiest ones, most first, at most `topN`. */
  top: (DenialKey & { count: number })[];
}

export interface DenialLimiterOptions {
  /** Length of a window in ms (default 10 s). */
  windowMs?: number;
  /** Denials recorded one by one per window before the rest are summarised (default 20). */
  perWindow?: number;
  /** Keys kept per window; more are counted in `suppressed` but not listed (default 1024). */
  maxKeys?: number;
  /** Entries in a summary's `top` (default 10). */
  topN?: number;
}

export class DenialLimiter {
  readonly windowMs: number;
  readonly perWindow: number;
  private readonly maxKeys: number;
  private readonly topN: number;
  private windowStartMs: number | null = null;
  private recordedInWindow = 0;
  private suppressed = 0;
  private readonly counts = new Map<string, DenialKey & { count: number }>();
  private overflowKeys = 0;

  constructor(opts: DenialLimiterOptions = {}) {
    this.windowMs = opts.windowMs ?? 10_000;
    this.perWindow = opts.perWindow ?? 20;
    this.maxKeys = opts.maxKeys ?? 1024;
    this.topN = opts.topN ?? 10;
  }

  /**
   * One denial event (`count` denials, ≥ 1) at `nowMs`: 'record' = write it as its own record, 'suppress' =
   * counted into the window's summary. Call pollSummary first when the window may have ended.
   */
  handle(nowMs: number, key: DenialKey, count = 1): 'record' | 'suppress' {
    if (this.windowStartMs === null || nowMs >= this.windowStartMs + this.windowMs) {
      if (this.suppressed === 0) {
        this.windowStartMs = nowMs;
        this.recordedInWindow = 0;
      }
    }
    if (this.recordedInWindow < this.perWindow && this.suppressed === 0) {
      this.recordedInWindow++;
      return 'record';
    }
    const n = Math.max(1, Math.trunc(count));
    this.suppressed += n;
    const k = `${key.node_id}\u0000${key.port}\u0000${key.network}\u0000${key.rule}`;
    const c = this.counts.get(k);
    if (c) c.count += n;
    else if (this.counts.size < this.maxKeys) this.counts.set(k, { ...key, count: n });
    else this.overflowKeys++;
    return 'suppress';
  }

  /** When the current window's summary is due (ms), or null when nothing is waiting to be summarised. */
  pollDeadlineMs(): number | null {
    return this.suppressed > 0 && this.windowStartMs !== null ? this.windowStartMs + this.windowMs : null;
  }

  /** The summary of a window that has ended by `nowMs` (`force`: end it now, e.g. at shutdown), else null. */
  pollSummary(nowMs: number, force = false): DenialSummary | null {
    const due = this.pollDeadlineMs();
    if (due === null || (!force && nowMs < due)) return null;
    const top = [...this.counts.values()].sort((a, b) => b.count - a.count).slice(0, this.topN);
    const s: DenialSummary = { since_ms: this.windowStartMs!, window_ms: this.windowMs, suppressed: this.suppressed, distinct: this.counts.size + this.overflowKeys, top };
    this.suppressed = 0;
    this.counts.clear();
    this.overflowKeys = 0;
    // The next denial opens a new window (and is recorded one by one again).
    this.windowStartMs = null;
    this.recordedInWindow = 0;
    return s;
  }
}
