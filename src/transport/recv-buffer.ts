// Receive side: reassembly of out-of-order stream bytes straight into a ring at their final position, a
// RangeSet of what arrived beyond the in-order point, and the flow-control limit the window advertises.
// Overlapping and duplicate segments are idempotent: bytes are simply written again in place.
import { RangeSet } from './range-set.js';

const INITIAL_CAPACITY = 64 * 1024;

export class RecvBuffer {
  private ring: Uint8Array;
  private headIdx = 0;
  /** Stream offset of the next byte the application reads. */
  readOffset = 0;
  /** Stream offset of the first byte not yet received in order (rcv.nxt). */
  contiguousEnd = 0;
  /** Byte ranges received beyond contiguousEnd. */
  readonly outOfOrder = new RangeSet();

  constructor(readonly maxBytes: number) {
    this.ring = new Uint8Array(Math.min(INITIAL_CAPACITY, maxBytes));
  }

  /** Highest offset (exclusive) the peer may send: the advertised window's right edge. */
  get limitOffset(): number {
    return this.readOffset + this.maxBytes;
  }
  get readableBytes(): number {
    return this.contiguousEnd - this.readOffset;
  }
  get hasGaps(): boolean {
    return !this.outOfOrder.isEmpty();
  }

  /**
   * Store src[srcOff, srcOff+len) at stream `offset`, trimmed to [contiguousEnd, limitOffset). Returns how far
   * the in-order point advanced (0 for duplicates or out-of-order data).
   */
  insert(offset: number, src: Uint8Array, srcOff: number, len: number): number {
    let start = offset;
    let end = offset + len;
    if (start < this.contiguousEnd) {
      srcOff += this.contiguousEnd - start;
      start = this.contiguousEnd;
    }
    const limit = this.limitOffset;
    if (end > limit) end = limit;
    if (end <= start) return 0;
    const n = end - start;
    const span = end - this.readOffset;
    if (span > this.ring.length) this.grow(span);
    const cap = this.ring.length;
    let idx = this.headIdx + (start - this.readOffset);
    if (idx >= cap) idx -= cap;
    const first = cap - idx < n ? cap - idx : n;
    this.ring.set(src.subarray(srcOff, srcOff + first), idx);
    if (first < n) this.ring.set(src.subarray(srcOff + first, srcOff + n), 0);
    const before = this.contiguousEnd;
    if (start === before && this.outOfOrder.isEmpty()) {
      this.contiguousEnd = end;
      return n;
    }
    this.outOfOrder.add(start, end);
    if (this.outOfOrder.start(0) === before) {
      this.contiguousEnd = this.outOfOrder.end(0);
      this.outOfOrder.removeFirst();
    }
    return this.contiguousEnd - before;
  }

  /** Copy up to into.length in-order bytes out; returns the count. */
  read(into: Uint8Array): number {
    let n = this.contiguousEnd - this.readOffset;
    if (n > into.length) n = into.length;
    if (n <= 0) return 0;
    const cap = this.ring.length;
    const idx = this.headIdx;
    const first = cap - idx < n ? cap - idx : n;
    into.set(this.ring.subarray(idx, idx + first), 0);
    if (first < n) into.set(this.ring.subarray(0, n - first), first);
    this.readOffset += n;
    this.headIdx += n;
    if (this.headIdx >= cap) this.headIdx -= cap;
    return n;
  }

  /** Drop unread and out-of-order data (reset). */
  clear(): void {
    this.readOffset = this.contiguousEnd;
    this.headIdx = 0;
    this.outOfOrder.clear();
  }

  private grow(needed: number): void {
    let cap = this.ring.length;
    while (cap < needed) cap *= 2;
    if (cap > this.maxBytes) cap = this.maxBytes;
    const next = new Uint8Array(cap);
    // Copy the live span [readOffset, highest byte held), holes included, linearised at index 0.
    const highest = this.outOfOrder.isEmpty() ? this.contiguousEnd : this.outOfOrder.maxEnd();
    const n = highest - this.readOffset;
    const old = this.ring;
    const first = old.length - this.headIdx < n ? old.length - this.headIdx : n;
    next.set(old.subarray(this.headIdx, this.headIdx + first), 0);
    if (first < n) next.set(old.subarray(0, n - first), first);
    this.ring = next;
    this.headIdx = 0;
  }
}
