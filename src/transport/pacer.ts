// Token-bucket pacer (in the spirit of quinn-proto's pacing.rs): tokens accrue at the congestion controller's
// rate up to a burst of max(10 segments, 2 ms of the rate), capped at 256 segments. The burst absorbs a
// driver whose timers fire late (Node timers have ~1 ms resolution) without losing rate.
import type { Micros } from '../core/clock.js';

const MIN_BURST_SEGMENTS = 10;
const MAX_BURST_SEGMENTS = 256;

export class Pacer {
  private tokensBytes: number;
  private lastRefillUs: Micros;
  private readonly burstUs: Micros;

  constructor(
    private mssBytes: number,
    nowUs: Micros,
    burstUs: Micros = 2_000,
  ) {
    this.burstUs = burstUs;
    this.tokensBytes = MIN_BURST_SEGMENTS * mssBytes;
    this.lastRefillUs = nowUs;
  }

  private capacityBytes(rateBps: number): number {
    const c = (rateBps * this.burstUs) / 1e6;
    const lo = MIN_BURST_SEGMENTS * this.mssBytes;
    const hi = MAX_BURST_SEGMENTS * this.mssBytes;
    return c < lo ? lo : c > hi ? hi : c;
  }

  /**
   * 0 when `bytes` may go now (and charges them), else the earliest time (µs) they may. `rateBps` = Infinity
   * disables pacing.
   */
  delayUntil(nowUs: Micros, bytes: number, rateBps: number): Micros {
    if (rateBps === Infinity) return 0;
    const cap = this.capacityBytes(rateBps);
    if (nowUs > this.lastRefillUs) {
      const t = this.tokensBytes + ((nowUs - this.lastRefillUs) * rateBps) / 1e6;
      this.tokensBytes = t > cap ? cap : t;
      this.lastRefillUs = nowUs;
    }
    if (this.tokensBytes >= bytes - 1e-6) return 0; // float slack: a refill computed to the µs may miss by ulps
    // Round up to a whole µs so a caller that sleeps exactly until the returned time is never still short.
    return nowUs + Math.ceil(((bytes - this.tokensBytes) * 1e6) / rateBps);
  }

  setMss(mssBytes: number): void {
    this.mssBytes = mssBytes;
  }

  onSent(bytes: number): void {
    this.tokensBytes -= bytes;
  }
}
