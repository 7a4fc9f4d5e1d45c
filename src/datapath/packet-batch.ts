// A reusable flat packet batch (buffer + stride-4 meta), used to build SendBatches and to present
// received slots as RecvBatches without per-packet objects.
import { META_STRIDE, type RecvBatch, type SendBatch } from './types.js';

/** a.b.c.d → (a<<24)|(b<<16)|(c<<8)|d, or -1 when `ip` is not an IPv4 literal. */
export function ipv4ToU32(ip: string): number {
  let v = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < ip.length; i++) {
    const c = ip.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || ++dots > 3) return -1;
      v = v * 256 + part;
      part = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return -1;
    } else return -1;
  }
  if (dots !== 3 || digits === 0) return -1;
  return v * 256 + part;
}

const ipCache = new Map<number, string>();
/** u32 → dotted IPv4, cached: senders repeat, strings should not be rebuilt per packet. */
export function u32ToIpv4(v: number): string {
  let s = ipCache.get(v);
  if (s === undefined) {
    s = `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
    if (ipCache.size >= 4096) ipCache.clear();
    ipCache.set(v, s);
  }
  return s;
}

export class PacketBatch implements SendBatch, RecvBatch {
  buf: Uint8Array;
  meta: Uint32Array;
  count = 0;
  /** Bytes of `buf` used by push/reserve. */
  bytesUsed = 0;
  /** Send side: per-packet session key id to seal with (SendBatch.keys); the filler sets each entry. */
  keys: Uint32Array | null = null;
  /** Receive side: per-packet verdicts (RecvBatch.status). */
  status: Uint8Array | null = null;

  constructor(capacityPackets: number, bufBytes: number);
  constructor(buf: Uint8Array, meta: Uint32Array);
  constructor(a: number | Uint8Array, b: number | Uint32Array) {
    this.buf = typeof a === 'number' ? new Uint8Array(b as number) : a;
    this.meta = typeof a === 'number' ? new Uint32Array(a * META_STRIDE) : (b as Uint32Array);
  }

  get capacityPackets(): number {
    return (this.meta.length / META_STRIDE) | 0;
  }

  reset(): void {
    this.count = 0;
    this.bytesUsed = 0;
  }

  /** Append a packet whose bytes are already at buf[offset, offset+length). False when meta is full. */
  add(offset: number, length: number, ipU32: number, port: number): boolean {
    if (this.count >= this.capacityPackets) return false;
    const m = this.count * META_STRIDE;
    this.meta[m] = offset;
    this.meta[m + 1] = length;
    this.meta[m + 2] = ipU32;
    this.meta[m + 3] = port;
    this.count++;
    return true;
  }

  /** Reserve `length` bytes at the write cursor for a packet to ipU32:port and return its offset (fill
   * buf[offset, offset+length) yourself, e.g. encode a frame in place), or -1 when full. */
  reserve(length: number, ipU32: number, port: number): number {
    const off = this.bytesUsed;
    if (off + length > this.buf.length || !this.add(off, length, ipU32, port)) return -1;
    this.bytesUsed = off + length;
    return off;
  }

  /** Copy `data` in as the next packet. False when buf or meta is full. */
  push(data: Uint8Array, ipU32: number, port: number): boolean {
    const off = this.reserve(data.length, ipU32, port);
    if (off < 0) return false;
    this.buf.set(data, off);
    return true;
  }

  offset(i: number): number {
    return this.meta[i * META_STRIDE]!;
  }
  length(i: number): number {
    return this.meta[i * META_STRIDE + 1]!;
  }
  ipU32(i: number): number {
    return this.meta[i * META_STRIDE + 2]!;
  }
  port(i: number): number {
    return this.meta[i * META_STRIDE + 3]!;
  }
  ip(i: number): string {
    return u32ToIpv4(this.meta[i * META_STRIDE + 2]!);
  }
  payload(i: number): Uint8Array {
    const off = this.meta[i * META_STRIDE]!;
    return this.buf.subarray(off, off + this.meta[i * META_STRIDE + 1]!);
  }
}
