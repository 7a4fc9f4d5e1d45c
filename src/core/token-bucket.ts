// Token buckets per key (sans-IO: callers pass `now` in µs), bounded: the least recently used key is forgotten
// first, so a flood of fresh keys costs memory up to `maxKeys` and no more. Used in front of work an unauthenticated
// packet can trigger (handshake DH, registry lookups).
import type { Micros } from './clock.js';

export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; atUs: Micros }>();

  /** `perS` tokens a second per key, at most `burst` saved up (a new key starts full). */
  constructor(
    private readonly perS: number,
    private readonly burst: number = perS,
    private readonly maxKeys = 8192,
  ) {}

  /** Take one token for `key`; false when its bucket is empty. */
  take(key: string, now: Micros): boolean {
    let b = this.buckets.get(key);
    if (b === undefined) {
      b = { tokens: this.burst, atUs: now };
      if (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value as string);
    } else {
      this.buckets.delete(key); // re-insert: Map order is least-recently-used order
      b.tokens = Math.min(this.burst, b.tokens + (Math.max(0, now - b.atUs) / 1e6) * this.perS);
      b.atUs = now;
    }
    this.buckets.set(key, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Would take() succeed now? (Consumes nothing.) */
  hasToken(key: string, now: Micros): boolean {
    const b = this.buckets.get(key);
    if (b === undefined) return true;
    return Math.min(this.burst, b.tokens + (Math.max(0, now - b.atUs) / 1e6) * this.perS) >= 1;
  }

  get size(): number {
    return this.buckets.size;
  }
}
