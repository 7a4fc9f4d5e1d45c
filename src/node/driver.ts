// The only timers in src/node: one deadline heap on one armed timer, and one flush per event-loop turn.
// Components ask the driver for deadlines (`at`, `after`, `every`) and for a flush (`requestFlush`) instead of
// calling setTimeout or flushing by hand; the driver runs on injected Timers and Clock, so the whole node core
// runs in simulated time (test/sim) as it does on the real event loop.
import type { Clock, Micros, Timers } from '../core/clock.js';

export interface Deadline {
  /** Idempotent. */
  cancel(): void;
  readonly isActive: boolean;
}

interface Entry {
  cancel(): void;
  isActive: boolean;
  atUs: Micros;
  seq: number;
  fn: () => void;
  heapIndex: number;
}

export class Driver {
  private readonly heap: Entry[] = [];
  private seq = 0;
  private armed: unknown = null;
  private armedAtUs = Infinity;
  private readonly flushers: Array<() => void> = [];
  private isFlushQueued = false;
  private isClosed = false;

  constructor(
    readonly clock: Clock,
    private readonly timers: Timers,
  ) {}

  nowUs(): Micros {
    return this.clock.nowUs();
  }

  /** Run `fn` at monotonic time `atUs` (or as soon as possible if that is past). */
  at(atUs: Micros, fn: () => void): Deadline {
    const e: Entry = {
      atUs,
      seq: this.seq++,
      fn,
      heapIndex: -1,
      isActive: true,
      cancel: () => this.remove(e),
    };
    if (this.isClosed) {
      e.isActive = false;
      return e;
    }
    this.push(e);
    this.arm();
    return e;
  }

  after(delayMs: number, fn: () => void): Deadline {
    return this.at(this.clock.nowUs() + Math.max(0, delayMs) * 1000, fn);
  }

  /** Run `fn` every `periodMs` (first after one period) until cancelled. */
  every(periodMs: number, fn: () => void): Deadline {
    let current: Deadline;
    let isActive = true;
    const handle: Deadline = {
      cancel: () => {
        isActive = false;
        current.cancel();
      },
      get isActive() {
        return isActive;
      },
    };
    const tick = (): void => {
      if (!isActive) return;
      current = this.after(periodMs, tick);
      fn();
    };
    current = this.after(periodMs, tick);
    return handle;
  }

  /** A function run by every flush (e.g. the connection table's, then the tunnels' transmit flush). */
  onFlush(fn: () => void): void {
    this.flushers.push(fn);
  }

  /** Flush once at the end of this event-loop turn, however many times this is called. */
  requestFlush(): void {
    if (this.isFlushQueued || this.isClosed) return;
    this.isFlushQueued = true;
    this.timers.soon(() => this.flush());
  }

  /** Flush now (e.g. at the end of a received batch); a queued end-of-turn flush still runs, cheaply. */
  flush(): void {
    this.isFlushQueued = false;
    for (const f of this.flushers) f();
  }

  /** Deadlines still pending (tests, diagnostics). */
  get pending(): number {
    return this.heap.length;
  }

  /** Earliest pending deadline, or null. */
  nextDeadlineUs(): Micros | null {
    return this.heap.length > 0 ? this.heap[0]!.atUs : null;
  }

  close(): void {
    this.isClosed = true;
    for (const e of this.heap) e.isActive = false;
    this.heap.length = 0;
    if (this.armed !== null) this.timers.clear(this.armed);
    this.armed = null;
    this.armedAtUs = Infinity;
  }

  private fire(): void {
    this.armed = null;
    this.armedAtUs = Infinity;
    const now = this.clock.nowUs();
    // Run everything due; deadlines added while running with atUs <= now wait for the next arm (no starvation).
    let budget = this.heap.length;
    while (budget-- > 0 && this.heap.length > 0 && this.heap[0]!.atUs <= now) {
      const e = this.popMin();
      e.isActive = false;
      e.fn();
    }
    this.arm();
    this.requestFlush();
  }

  private arm(): void {
    if (this.isClosed) return;
    const top = this.heap[0];
    if (!top) {
      if (this.armed !== null) this.timers.clear(this.armed);
      this.armed = null;
      this.armedAtUs = Infinity;
      return;
    }
    if (this.armed !== null && this.armedAtUs <= top.atUs) return;
    if (this.armed !== null) this.timers.clear(this.armed);
    const delayMs = Math.max(0, (top.atUs - this.clock.nowUs()) / 1000);
    this.armedAtUs = top.atUs;
    this.armed = this.timers.set(Math.ceil(delayMs), () => this.fire());
  }

  private remove(e: Entry): void {
    if (!e.isActive) return;
    e.isActive = false;
    const i = e.heapIndex;
    if (i < 0) return;
    const last = this.heap.pop()!;
    if (last !== e) {
      this.heap[i] = last;
      last.heapIndex = i;
      this.siftDown(i);
      this.siftUp(i);
    }
    e.heapIndex = -1;
  }

  private push(e: Entry): void {
    e.heapIndex = this.heap.length;
    this.heap.push(e);
    this.siftUp(e.heapIndex);
  }

  private popMin(): Entry {
    const top = this.heap[0]!;
    const last = this.heap.pop()!;
    if (last !== top) {
      this.heap[0] = last;
      last.heapIndex = 0;
      this.siftDown(0);
    }
    top.heapIndex = -1;
    return top;
  }

  private less(a: Entry, b: Entry): boolean {
    return a.atUs < b.atUs || (a.atUs === b.atUs && a.seq < b.seq);
  }

  private siftUp(i: number): void {
    const h = this.heap;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      h[i]!.heapIndex = i;
      h[p]!.heapIndex = p;
      i = p;
    }
  }

  private siftDown(i: number): void {
    const h = this.heap;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
      if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m]!, h[i]!];
      h[i]!.heapIndex = i;
      h[m]!.heapIndex = m;
      i = m;
    }
  }
}

/** Virtual Timers for simulations: advance `clock` with `runUntil`; `soon` callbacks run at the current time. */
export class VirtualTimers implements Timers {
  private readonly queue: Array<{ atUs: Micros; seq: number; fn: () => void; isLive: boolean }> = [];
  private readonly soonQueue: Array<() => void> = [];
  private seq = 0;
  constructor(private readonly clock: { nowUs(): Micros; set(us: Micros): void }) {}
  set(delayMs: number, fn: () => void): unknown {
    const e = { atUs: this.clock.nowUs() + Math.max(0, delayMs) * 1000, seq: this.seq++, fn, isLive: true };
    this.queue.push(e);
    return e;
  }
  clear(handle: unknown): void {
    if (handle && typeof handle === 'object') (handle as { isLive: boolean }).isLive = false;
  }
  soon(fn: () => void): void {
    this.soonQueue.push(fn);
  }
  /** Run `soon` callbacks until none are left (they may add more). */
  drainSoon(): number {
    let n = 0;
    while (this.soonQueue.length > 0) {
      this.soonQueue.shift()!();
      n++;
    }
    return n;
  }
  /** Earliest live timer, or null. */
  nextAtUs(): Micros | null {
    let best: Micros | null = null;
    for (const e of this.queue) if (e.isLive && (best === null || e.atUs < best)) best = e.atUs;
    return best;
  }
  /** Move the clock to the earliest timer (if ≤ limitUs) and run every timer due then; false when none. */
  step(limitUs: Micros): boolean {
    this.drainSoon();
    const at = this.nextAtUs();
    if (at === null || at > limitUs) return false;
    if (at > this.clock.nowUs()) this.clock.set(at);
    const now = this.clock.nowUs();
    const due = this.queue.filter((e) => e.isLive && e.atUs <= now).sort((a, b) => a.atUs - b.atUs || a.seq - b.seq);
    for (const e of due) e.isLive = false;
    for (let i = this.queue.length - 1; i >= 0; i--) if (!this.queue[i]!.isLive) this.queue.splice(i, 1);
    for (const e of due) e.fn();
    this.drainSoon();
    return true;
  }
}
