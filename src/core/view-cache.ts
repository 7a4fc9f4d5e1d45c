// Views of a long-lived buffer's regions, made once and handed out again: the per-packet receive path reads
// each datagram through Uint8Array views of the datapath's receive ring, and a fresh view per packet (a JS
// object, ~100 bytes) was one of the allocations per packet the bench's --gc=heap pass found reaching major
// GCs. The ring's layout repeats (the reader thread fills the same message slots, a stream's datagrams have one
// size), so the view made for a region last time fits this time.
//
// Large buffers only (≥ MIN_CACHED_BUFFER_BYTES: a receive ring, not a packet), each with its own table,
// direct-mapped by the region's offset (1 KiB granularity) and checked on exact offset and length. The tables
// sit in a WeakMap keyed by the buffer's memory, so a ring nobody else holds (a reopened socket's old one) goes
// with its views, and several nodes in one process (each its own ring) do not evict each other. Views of small
// buffers (one datagram each, the node:dgram datapath) are made fresh and never kept. The ring in use last stays
// referenced until another one is used (one ring per cache, at most).

const SHIFT = 10;
export const MIN_CACHED_BUFFER_BYTES = 256 * 1024;
const MAX_ENTRIES = 1 << 16;

export class ViewCache {
  private readonly tables = new WeakMap<ArrayBufferLike, Array<Uint8Array | null>>();
  private views: Array<Uint8Array | null> = [];
  private mask = 0;
  private current: ArrayBufferLike | null = null;

  /** buf[start, end) as a view: the cached one when it is exactly that region of the cached buffer. */
  view(buf: Uint8Array, start: number, end: number): Uint8Array {
    const memory = buf.buffer;
    if (memory !== this.current) {
      if (memory.byteLength < MIN_CACHED_BUFFER_BYTES) return buf.subarray(start, end);
      this.use(memory);
    }
    const at = buf.byteOffset + start;
    const k = (at >>> SHIFT) & this.mask;
    const v = this.views[k]!;
    if (v !== null && v.byteOffset === at && v.length === end - start) return v;
    const fresh = buf.subarray(start, end);
    this.views[k] = fresh;
    return fresh;
  }

  private use(memory: ArrayBufferLike): void {
    let views = this.tables.get(memory);
    if (views === undefined) {
      let n = 1;
      while (n < Math.ceil(memory.byteLength / (1 << SHIFT)) && n < MAX_ENTRIES) n *= 2;
      views = new Array<Uint8Array | null>(n).fill(null);
      this.tables.set(memory, views);
    }
    this.views = views;
    this.mask = views.length - 1;
    this.current = memory;
  }
}
