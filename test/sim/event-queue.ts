// Binary min-heap of timed items; ties break by insertion order so simulations replay bit-for-bit.

export class EventQueue<T> {
  private times: number[] = [];
  private seqs: number[] = [];
  private items: T[] = [];
  private nextSeq = 0;

  get size(): number {
    return this.items.length;
  }

  peekTime(): number {
    return this.items.length === 0 ? Infinity : this.times[0]!;
  }

  push(timeUs: number, item: T): void {
    let i = this.items.length;
    const seq = this.nextSeq++;
    this.times.push(timeUs);
    this.seqs.push(seq);
    this.items.push(item);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(timeUs, seq, this.times[p]!, this.seqs[p]!)) break;
      this.times[i] = this.times[p]!;
      this.seqs[i] = this.seqs[p]!;
      this.items[i] = this.items[p]!;
      i = p;
    }
    this.times[i] = timeUs;
    this.seqs[i] = seq;
    this.items[i] = item;
  }

  pop(): T | undefined {
    const n = this.items.length;
    if (n === 0) return undefined;
    const top = this.items[0]!;
    const t = this.times.pop()!;
    const s = this.seqs.pop()!;
    const it = this.items.pop()!;
    if (n > 1) {
      let i = 0;
      const m = n - 1;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= m) break;
        const r = l + 1;
        const c = r < m && this.less(this.times[r]!, this.seqs[r]!, this.times[l]!, this.seqs[l]!) ? r : l;
        if (!this.less(this.times[c]!, this.seqs[c]!, t, s)) break;
        this.times[i] = this.times[c]!;
        this.seqs[i] = this.seqs[c]!;
        this.items[i] = this.items[c]!;
        i = c;
      }
      this.times[i] = t;
      this.seqs[i] = s;
      this.items[i] = it;
    }
    return top;
  }

  private less(t1: number, s1: number, t2: number, s2: number): boolean {
    return t1 < t2 || (t1 === t2 && s1 < s2);
  }
}
