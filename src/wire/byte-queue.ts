// Bytes pushed in chunks (a TCP stream's reads), taken out in exact sizes by a frame decoder: the chunks are
// kept as they came and copied only when a read spans more than one. Pure, no I/O.

export class ByteQueue {
  private chunks: Uint8Array[] = [];
  private bytes = 0;

  /** Bytes held. */
  get length(): number {
    return this.bytes;
  }

  /** Chunks held (a peer dripping 1-byte segments makes one per byte: budgets count them). */
  get chunkCount(): number {
    return this.chunks.length;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.bytes += chunk.length;
  }

  clear(): void {
    this.chunks = [];
    this.bytes = 0;
  }

  /** The first n bytes without taking them (n ≤ length): a view when one chunk holds them, else a copy. */
  peek(n: number): Uint8Array {
    const first = this.chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    const out = new Uint8Array(n);
    let off = 0;
    for (const c of this.chunks) {
      const k = Math.min(c.length, n - off);
      out.set(c.subarray(0, k), off);
      off += k;
      if (off === n) break;
    }
    return out;
  }

  /** Take the first n bytes (n ≤ length): a view when one chunk holds them, else a copy. */
  take(n: number): Uint8Array {
    const first = this.chunks[0]!;
    if (first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.bytes -= n;
      return out;
    }
    const out = new Uint8Array(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - off);
      out.set(c.subarray(0, k), off);
      off += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.bytes -= n;
    return out;
  }
}
