// Sliding anti-replay window over 64-bit message counters (RFC 6479's ring of bitmap words, as WireGuard uses).
// A counter is accepted once, if it is above the highest seen or at most REPLAY_WINDOW_SIZE - 1 below it.
// The ring holds twice the window so advancing only clears whole words that are out of the window anyway.
// Counters are JS numbers: exact below 2^53, far beyond what the session's reject limits allow.

/** Counters this far below the highest seen are still accepted if new (reordering tolerance). */
export const REPLAY_WINDOW_SIZE = 2048;
const WORD_BITS = 32;
const RING_WORDS = (2 * REPLAY_WINDOW_SIZE) / WORD_BITS; // 128 words = 4096 bits

export class ReplayWindow {
  private readonly ring = new Uint32Array(RING_WORDS);
  /** Highest accepted counter; -1 before the first. */
  private highest = -1;

  /** Highest counter accepted so far, or -1. */
  get highestCounter(): number {
    return this.highest;
  }

  /** True when `counter` would be accepted. Pure: call before the (costly) authentication, then `update`. */
  check(counter: number): boolean {
    if (!(counter >= 0) || !Number.isSafeInteger(counter)) return false;
    if (counter > this.highest) return true;
    if (this.highest - counter >= REPLAY_WINDOW_SIZE) return false;
    const word = Math.floor(counter / WORD_BITS);
    const bit = counter - word * WORD_BITS;
    return ((this.ring[word % RING_WORDS]! >>> bit) & 1) === 0;
  }

  /** Record an authenticated counter. Returns false (and changes nothing) when it is a replay or too old. */
  update(counter: number): boolean {
    if (!this.check(counter)) return false;
    const word = Math.floor(counter / WORD_BITS);
    if (counter > this.highest) {
      const topWord = Math.floor(this.highest / WORD_BITS); // -1 before the first counter
      const advance = Math.min(word - topWord, RING_WORDS);
      for (let i = 1; i <= advance; i++) this.ring[(topWord + i) % RING_WORDS] = 0;
      this.highest = counter;
    }
    const bit = counter - word * WORD_BITS;
    this.ring[word % RING_WORDS] |= 1 << bit;
    return true;
  }

  reset(): void {
    this.ring.fill(0);
    this.highest = -1;
  }
}
