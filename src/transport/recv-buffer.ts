// Receive side: reassembly of out-of-order stream bytes straight into chunks at their final position, a
// RangeSet of what arrived beyond the in-order point, and the flow-control limit the window advertises.
// Overlapping and duplicate segments are idempotent: bytes are simply written again in place.
//
// The bytes live in a list of contiguous chunks, not one ring, so the application can take in-order bytes as
// views (`readView`) without a copy — what udx-native does with its read buffer (holepunchto/udx-native,
// binding.cc `on_udx_stream_read` hands JS the filled buffer). A view is safe because nothing is ever written
// below contiguousEnd again (duplicates are trimmed to it) and a chunk a view was taken from is never reused.
import { RangeSet } from './range-set.js';
import { ViewCache } from '../core/view-cache.js';

/** Payload views of segments in the receive ring (core/view-cache.ts): insert's copy allocates nothing per packet. */
const payloadViews = new ViewCache();

/** The first chunk is small so a connection that carries little costs little; each next one doubles, to 256 KiB. */
const FIRST_CHUNK_BYTES = 4 * 1024;
const CHUNK_BYTES = 256 * 1024;

export class RecvBuffer {
  /** Chunks in stream order; chunk i holds [chunkStart[i], chunkStart[i] + chunks[i].length). */
  private readonly chunks: Uint8Array[] = [];
  private readonly chunkStart: number[] = [];
  /** Whether a view of chunk i was handed out (then it is dropped, never recycled). */
  private readonly isShared: boolean[] = [];
  /** A drained chunk nobody holds a view of, reused for the next allocation. */
  private spare: Uint8Array | null = null;
  /** The size of the next chunk allocated (FIRST_CHUNK_BYTES, doubling to CHUNK_BYTES). */
  private nextChunkBytes = FIRST_CHUNK_BYTES;
  /** Stream offset of the next byte the application reads. */
  readOffset = 0;
  /** Stream offset of the first byte not yet received in order (rcv.nxt). */
  contiguousEnd = 0;
  /** Byte ranges received beyond contiguousEnd. */
  readonly outOfOrder = new RangeSet();

  constructor(readonly maxBytes: number) {}

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
    this.cover(end);
    // Find the chunk holding `start` (a handful at most: the window over the chunk size).
    let i = 0;
    while (this.chunkStart[i]! + this.chunks[i]!.length <= start) i++;
    let pos = start;
    while (pos < end) {
      const c = this.chunks[i]!;
      const idx = pos - this.chunkStart[i]!;
      const room = c.length - idx;
      const n = end - pos < room ? end - pos : room;
      c.set(n === src.length && srcOff === 0 ? src : payloadViews.view(src, srcOff, srcOff + n), idx);
      pos += n;
      srcOff += n;
      i++;
    }
    const before = this.contiguousEnd;
    if (start === before && this.outOfOrder.isEmpty()) {
      this.contiguousEnd = end;
      return end - start;
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
    let done = 0;
    while (done < n) {
      const c = this.chunks[0]!;
      const idx = this.readOffset - this.chunkStart[0]!;
      const take = n - done < c.length - idx ? n - done : c.length - idx;
      into.set(c.subarray(idx, idx + take), done);
      done += take;
      this.advance(take);
    }
    return n;
  }

  /**
   * Take up to maxBytes in-order bytes without copying: a view of this buffer's memory that stays valid and
   * unchanged for as long as the caller keeps it. At most one chunk's worth per call; null when nothing is
   * readable.
   */
  readView(maxBytes: number): Uint8Array | null {
    if (this.contiguousEnd <= this.readOffset || maxBytes <= 0) return null;
    const c = this.chunks[0]!;
    const idx = this.readOffset - this.chunkStart[0]!;
    let n = this.contiguousEnd - this.readOffset;
    if (n > c.length - idx) n = c.length - idx;
    if (n > maxBytes) n = maxBytes;
    this.isShared[0] = true;
    const view = c.subarray(idx, idx + n);
    this.advance(n);
    return view;
  }

  /** Drop unread and out-of-order data (reset). */
  clear(): void {
    this.readOffset = this.contiguousEnd;
    this.outOfOrder.clear();
    while (this.chunks.length > 0) this.dropFirst();
  }

  /** Move the read point forward by n and release chunks wholly below it. */
  private advance(n: number): void {
    this.readOffset += n;
    while (this.chunks.length > 0 && this.chunkStart[0]! + this.chunks[0]!.length <= this.readOffset) this.dropFirst();
  }

  private dropFirst(): void {
    const c = this.chunks.shift()!;
    this.chunkStart.shift();
    const isShared = this.isShared.shift()!;
    if (!isShared && c.length === CHUNK_BYTES) this.spare = c;
  }

  /** Allocate chunks until stream offset `end` (exclusive) is backed. */
  private cover(end: number): void {
    const k = this.chunks.length;
    let next = k > 0 ? this.chunkStart[k - 1]! + this.chunks[k - 1]!.length : this.readOffset;
    while (next < end) {
      let c: Uint8Array;
      if (this.spare) {
        c = this.spare;
        this.spare = null;
      } else {
        c = new Uint8Array(this.nextChunkBytes);
        if (this.nextChunkBytes < CHUNK_BYTES) this.nextChunkBytes = Math.min(CHUNK_BYTES, this.nextChunkBytes * 2);
      }
      this.chunks.push(c);
      this.chunkStart.push(next);
      this.isShared.push(false);
      next += c.length;
    }
  }
}
