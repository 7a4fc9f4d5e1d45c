// Time in the sans-IO core is always a number of microseconds passed in by the caller.
export type Micros = number;

export interface Clock {
  /** Monotonic microseconds. */
  nowUs(): Micros;
}

const origin = process.hrtime.bigint();

/** Real monotonic clock for drivers (node/, datapath/). Never used under wire/crypto/transport/nat. */
export const monotonicClock: Clock = {
  nowUs: () => Number((process.hrtime.bigint() - origin) / 1000n),
};

/** A clock tests move by hand; optionally advances by `stepUs` on every read (as tailscale's tstest clock). */
export class ManualClock implements Clock {
  constructor(
    private t: Micros = 0,
    private readonly stepUs: Micros = 0,
  ) {}
  nowUs(): Micros {
    const t = this.t;
    this.t += this.stepUs;
    return t;
  }
  advance(us: Micros): void {
    this.t += us;
  }
  set(us: Micros): void {
    this.t = us;
  }
}

/**
 * A source of one-shot timers and end-of-turn callbacks. Real: setTimeout/setImmediate. Simulated: a virtual
 * heap advanced with the ManualClock (test/sim). Only src/node/driver.ts (and socket owners) consume it in node/.
 */
export interface Timers {
  set(delayMs: number, fn: () => void): unknown;
  clear(handle: unknown): void;
  /** Run `fn` once the current event-loop turn's work is done (setImmediate). */
  soon(fn: () => void): void;
}

/** Real timers whose pending timers keep the process alive (for a component awaited by its caller until close). */
export const heldTimers: Timers = {
  set: (delayMs, fn) => setTimeout(fn, delayMs),
  clear: (h) => clearTimeout(h as NodeJS.Timeout),
  soon: (fn) => void setImmediate(fn),
};

/** Real timers that do not keep the process alive (a node's sockets do). */
export const realTimers: Timers = {
  ...heldTimers,
  set: (delayMs, fn) => {
    const t = setTimeout(fn, delayMs);
    t.unref?.();
    return t;
  },
};

/** Wall-clock milliseconds since the epoch (timestamps people read: trust.json, inbox); injectable for sims. */
export interface WallClock {
  nowMs(): number;
}
export const realWallClock: WallClock = { nowMs: () => Date.now() };
