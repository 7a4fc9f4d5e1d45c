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
