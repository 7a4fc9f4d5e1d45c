// Bytes the application wrote and the peer has not yet acknowledged cumulatively, as a growable ring.
// Stream offsets map to ring indices relative to the head (the cumulative ack point), so offsets can grow to
// 2^53 without modulo arithmetic. The ring is allocated at the first write, small, and doubles up to maxBytes,
// so an idle connection costs nothing and one that carries a request costs kilobytes, not the full window
// (a dial's allocations were a tenth of its CPU in the daemon: `npm run bench -- --profile=setup`).

const INITIAL_CAPACITY = 4 * 1024;
const EMPTY = new Uint8Array(0);

export class SendBuffer {
  private ring: Uint8Array;
  private headIdx = 0;
  /** Stream offset of the oldest byte held (everything below is acknowledged). */
  private headOffset = 0;
  private length = 0;

  constructor(readonly maxBytes: number) {
    this.ring = EMPTY;
  }

  /** Offset one past the last byte written. */
  get endOffset(): number {
    return this.headOffset + this.length;
  }
  get startOffset(): number {
    return this.headOffset;
  }
  get bufferedBytes(): number {
    return this.length;
  }
  get freeBytes(): number {
    return this.maxBytes - this.length;
  }

  /** Copy as much of data[off, off+len) as fits; returns the number of bytes taken. */
  write(data: Uint8Array, off = 0, len = data.length - off): number {
    const n = len < this.maxBytes - this.length ? len : this.maxBytes - this.length;
    if (n <= 0) return 0;
    if (this.length + n > this.ring.length) this.grow(this.length + n);
    const cap = this.ring.length;
    let idx = this.headIdx + this.length;
    if (idx >= cap) idx -= cap;
    const first = cap - idx < n ? cap - idx : n;
    this.ring.set(data.subarray(off, off + first), idx);
    if (first < n) this.ring.set(data.subarray(off + first, off + n), 0);
    this.length += n;
    return n;
  }

  /** Copy stream bytes [offset, offset+len) into dst at dstOff. The range must be held (caller checks). */
  copyOut(offset: number, len: number, dst: Uint8Array, dstOff: number): void {
    const cap = this.ring.length;
    let idx = this.headIdx + (offset - this.headOffset);
    if (idx >= cap) idx -= cap;
    const first = cap - idx < len ? cap - idx : len;
    dst.set(this.ring.subarray(idx, idx + first), dstOff);
    if (first < len) dst.set(this.ring.subarray(0, len - first), dstOff + first);
  }

  /** Release everything below `offset` (a cumulative acknowledgement). */
  ackUpTo(offset: number): void {
    let n = offset - this.headOffset;
    if (n <= 0) return;
    if (n > this.length) n = this.length;
    this.headOffset += n;
    this.length -= n;
    if (this.length === 0) this.headIdx = 0;
    else {
      this.headIdx += n;
      if (this.headIdx >= this.ring.length) this.headIdx -= this.ring.length;
    }
  }

  /** Drop everything (reset). */
  clear(): void {
    this.headOffset += this.length;
    this.length = 0;
    this.headIdx = 0;
  }

  private grow(needed: number): void {
    let cap = Math.max(this.ring.length, INITIAL_CAPACITY);
    while (cap < needed) cap *= 2;
    if (cap > this.maxBytes) cap = this.maxBytes;
    const next = new Uint8Array(cap);
    this.copyOut(this.headOffset, this.length, next, 0);
    this.ring = next;
    this.headIdx = 0;
  }
}
