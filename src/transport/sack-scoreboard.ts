// The sender's scoreboard: one record per packet number sent, in a ring of parallel typed arrays indexed by
// pn (no per-packet objects). ACK ranges mark records acknowledged; RFC 9002 §6.1 declares the unacknowledged
// ones below the largest acknowledged lost by packet or time threshold. `basePn`, the lowest unresolved packet,
// trails the largest acknowledged by about the reordering threshold, so an ACK costs O(newly acked + ranges),
// not O(window), even though every ACK repeats the ranges below.
import type { Micros } from '../core/clock.js';

/** Counted in bytesInFlight (data, FIN). */
export const PKT_IN_FLIGHT = 1;
/** Expects an ACK, arms the PTO (data, FIN, SYN). */
export const PKT_ACK_ELICITING = 2;
export const PKT_ACKED = 4;
export const PKT_LOST = 8;
export const PKT_FIN = 16;
/** Sent while the application had nothing more to send (delivery-rate sample flag). */
export const PKT_APP_LIMITED = 32;
export const PKT_SYN = 64;
const PKT_TRACKED = PKT_IN_FLIGHT | PKT_ACK_ELICITING;
const PKT_RESOLVED = PKT_ACKED | PKT_LOST;

export class SackScoreboard {
  /** Next packet number to send. */
  nextPn = 0;
  /** Lowest packet number not yet acknowledged or declared lost. */
  basePn = 0;
  largestAckedPn = -1;
  bytesInFlight = 0;
  ackElicitingOutstanding = 0;
  lastAckElicitingSentUs: Micros = 0;

  private mask: number;
  flags: Uint8Array;
  sentTimeUs: Float64Array;
  sizeBytes: Int32Array;
  chunkOffset: Float64Array;
  chunkLen: Int32Array;
  /** Delivery-rate state at send time (draft-cheng-iccrg-delivery-rate-estimation §3.2): P.delivered … */
  delivered: Float64Array;
  deliveredTimeUs: Float64Array;
  firstSentTimeUs: Float64Array;

  /** Packet numbers acknowledged by the last ackRange calls since beginAck, in processing order. */
  newlyAcked: Float64Array = new Float64Array(64);
  newlyAckedCount = 0;
  /** Packet numbers declared lost by the last detectLosses/markAllLost call. */
  newlyLost: Float64Array = new Float64Array(64);
  newlyLostCount = 0;

  constructor(initialCapacity = 32) {
    let cap = 16;
    while (cap < initialCapacity) cap *= 2;
    this.mask = cap - 1;
    this.flags = new Uint8Array(cap);
    this.sentTimeUs = new Float64Array(cap);
    this.sizeBytes = new Int32Array(cap);
    this.chunkOffset = new Float64Array(cap);
    this.chunkLen = new Int32Array(cap);
    this.delivered = new Float64Array(cap);
    this.deliveredTimeUs = new Float64Array(cap);
    this.firstSentTimeUs = new Float64Array(cap);
  }

  /** Ring slot of a packet number in [basePn, nextPn). ToInt32 is exact modulo 2^32, so `&` works to 2^53. */
  slot(pn: number): number {
    return pn & this.mask;
  }

  /** Record the packet about to be sent as `nextPn`; returns its number. */
  onSent(
    nowUs: Micros,
    sizeBytes: number,
    flags: number,
    chunkOffset: number,
    chunkLen: number,
    delivered: number,
    deliveredTimeUs: Micros,
    firstSentTimeUs: Micros,
  ): number {
    const pn = this.nextPn;
    if (pn - this.basePn > this.mask) this.grow();
    const s = pn & this.mask;
    this.flags[s] = flags;
    this.sentTimeUs[s] = nowUs;
    this.sizeBytes[s] = sizeBytes;
    this.chunkOffset[s] = chunkOffset;
    this.chunkLen[s] = chunkLen;
    this.delivered[s] = delivered;
    this.deliveredTimeUs[s] = deliveredTimeUs;
    this.firstSentTimeUs[s] = firstSentTimeUs;
    this.nextPn = pn + 1;
    if (flags & PKT_IN_FLIGHT) this.bytesInFlight += sizeBytes;
    if (flags & PKT_ACK_ELICITING) {
      this.ackElicitingOutstanding++;
      this.lastAckElicitingSentUs = nowUs;
    }
    if (pn === this.basePn && (flags & PKT_TRACKED) === 0) this.basePn = pn + 1;
    return pn;
  }

  beginAck(): void {
    this.newlyAckedCount = 0;
    this.newlyLostCount = 0;
  }

  /**
   * Mark [lo, hi] acknowledged (inclusive, as ACK ranges are). Packets below basePn are already resolved and
   * skipped; numbers never sent are ignored. Records acked after being declared lost are reported too (their
   * data arrived after all) but were already removed from bytesInFlight.
   */
  ackRange(lo: number, hi: number): void {
    if (lo < this.basePn) lo = this.basePn;
    if (hi >= this.nextPn) hi = this.nextPn - 1;
    if (hi > this.largestAckedPn && hi >= lo) this.largestAckedPn = hi;
    const flags = this.flags;
    const mask = this.mask;
    for (let pn = lo; pn <= hi; pn++) {
      const s = pn & mask;
      const f = flags[s]!;
      if (f & PKT_ACKED) continue;
      flags[s] = f | PKT_ACKED;
      if ((f & PKT_TRACKED) === 0) continue;
      if ((f & PKT_LOST) === 0) {
        if (f & PKT_IN_FLIGHT) this.bytesInFlight -= this.sizeBytes[s]!;
        if (f & PKT_ACK_ELICITING) this.ackElicitingOutstanding--;
      }
      this.pushAcked(pn);
    }
  }

  /**
   * RFC 9002 §6.1: every unresolved packet below the largest acknowledged is lost once `packetThreshold`
   * newer packets were acknowledged or it was sent `lossDelayUs` or more ago. Returns when the next one would
   * cross the time threshold (Infinity if none). Results in newlyLost.
   */
  detectLosses(nowUs: Micros, lossDelayUs: Micros, packetThreshold: number): Micros {
    this.newlyLostCount = 0;
    let nextLossUs = Infinity;
    const largest = this.largestAckedPn;
    const flags = this.flags;
    const mask = this.mask;
    for (let pn = this.basePn; pn < largest; pn++) {
      const s = pn & mask;
      const f = flags[s]!;
      if ((f & PKT_TRACKED) === 0 || (f & PKT_RESOLVED) !== 0) continue;
      const sent = this.sentTimeUs[s]!;
      // the same expression decides and schedules, so a timer never fires early and finds nothing (no livelock)
      const lossAtUs = sent + lossDelayUs;
      if (largest - pn >= packetThreshold || lossAtUs <= nowUs) this.markLost(pn, s, f);
      else if (lossAtUs < nextLossUs) nextLossUs = lossAtUs;
    }
    return nextLossUs;
  }

  /** Retransmission timeout: declare every unresolved packet lost (RFC 6298 §5.4 retransmits from the oldest). */
  markAllLost(): void {
    this.newlyLostCount = 0;
    const flags = this.flags;
    const mask = this.mask;
    for (let pn = this.basePn; pn < this.nextPn; pn++) {
      const s = pn & mask;
      const f = flags[s]!;
      if ((f & PKT_TRACKED) !== 0 && (f & PKT_RESOLVED) === 0) this.markLost(pn, s, f);
    }
  }

  /** Move basePn past resolved records (call after processing an ACK or a loss). */
  advanceBase(): void {
    const flags = this.flags;
    const mask = this.mask;
    let pn = this.basePn;
    const end = this.nextPn;
    while (pn < end) {
      const f = flags[pn & mask]!;
      if ((f & PKT_RESOLVED) === 0 && (f & PKT_TRACKED) !== 0) break;
      pn++;
    }
    this.basePn = pn;
  }

  /** Highest-numbered unresolved in-flight packet carrying data or FIN (the tail-loss probe's payload), or −1. */
  newestOutstandingChunk(): number {
    const flags = this.flags;
    for (let pn = this.nextPn - 1; pn >= this.basePn; pn--) {
      const s = pn & this.mask;
      const f = flags[s]!;
      if ((f & PKT_IN_FLIGHT) !== 0 && (f & PKT_RESOLVED) === 0) return pn;
    }
    return -1;
  }

  isResolved(pn: number): boolean {
    if (pn < this.basePn) return true;
    if (pn >= this.nextPn) return false;
    const f = this.flags[pn & this.mask]!;
    return (f & PKT_RESOLVED) !== 0 || (f & PKT_TRACKED) === 0;
  }

  private markLost(pn: number, s: number, f: number): void {
    this.flags[s] = f | PKT_LOST;
    if (f & PKT_IN_FLIGHT) this.bytesInFlight -= this.sizeBytes[s]!;
    if (f & PKT_ACK_ELICITING) this.ackElicitingOutstanding--;
    if (this.newlyLostCount === this.newlyLost.length) this.newlyLost = growF64(this.newlyLost);
    this.newlyLost[this.newlyLostCount++] = pn;
  }

  private pushAcked(pn: number): void {
    if (this.newlyAckedCount === this.newlyAcked.length) this.newlyAcked = growF64(this.newlyAcked);
    this.newlyAcked[this.newlyAckedCount++] = pn;
  }

  private grow(): void {
    const oldMask = this.mask;
    const cap = (oldMask + 1) * 2;
    const mask = cap - 1;
    const flags = new Uint8Array(cap);
    const sent = new Float64Array(cap);
    const size = new Int32Array(cap);
    const off = new Float64Array(cap);
    const len = new Int32Array(cap);
    const del = new Float64Array(cap);
    const delT = new Float64Array(cap);
    const first = new Float64Array(cap);
    for (let pn = this.basePn; pn < this.nextPn; pn++) {
      const a = pn & oldMask;
      const b = pn & mask;
      flags[b] = this.flags[a]!;
      sent[b] = this.sentTimeUs[a]!;
      size[b] = this.sizeBytes[a]!;
      off[b] = this.chunkOffset[a]!;
      len[b] = this.chunkLen[a]!;
      del[b] = this.delivered[a]!;
      delT[b] = this.deliveredTimeUs[a]!;
      first[b] = this.firstSentTimeUs[a]!;
    }
    this.mask = mask;
    this.flags = flags;
    this.sentTimeUs = sent;
    this.sizeBytes = size;
    this.chunkOffset = off;
    this.chunkLen = len;
    this.delivered = del;
    this.deliveredTimeUs = delT;
    this.firstSentTimeUs = first;
  }
}

function growF64(a: Float64Array): Float64Array {
  const b = new Float64Array(a.length * 2);
  b.set(a);
  return b;
}
