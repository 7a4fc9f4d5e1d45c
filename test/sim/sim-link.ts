// One direction of a simulated path: drop-tail queue in front of a serializing bottleneck, then propagation
// delay with jitter, random and Gilbert–Elliott burst loss, reordering, duplication and corruption — all from
// a seeded Rng, so a run replays bit-for-bit from its seed. Several senders may share one SimLink (a
// dumbbell bottleneck). Rates are bytes per second; times µs.
// What crosses the link is the tunnel's sealed frame (segment + PND1 header and AEAD tag, test/sim/pair.ts
// seals it with the real NoiseSession); the bottleneck charges each packet its on-wire size, frame + UDP/IPv4
// headers, so throughput is measured against the wire rate. Corruption flips bits of the sealed frame and
// delivers it: the receiver's AEAD has to reject it.
import type { Rng } from '../../src/core/rng.js';

/** UDP (8) and IPv4 (20) headers: what the link carries around every tunnel frame. */
export const UDP_IPV4_HEADER_BYTES = 8 + 20;

export interface LinkConfig {
  /** One-way propagation delay. */
  delayUs: number;
  /** Extra delay uniform in [0, jitterUs); FIFO order is kept unless `reorder` says otherwise. */
  jitterUs?: number;
  /** Bottleneck rate in bytes/s; 0 or absent = infinitely fast. */
  rateBps?: number;
  /** Drop-tail limit on bytes waiting for the bottleneck (default: unlimited). */
  queueBytes?: number;
  /** Independent random loss probability per packet. */
  loss?: number;
  /** Gilbert–Elliott two-state burst loss. */
  burstLoss?: { pEnterBad: number; pExitBad: number; lossInBad: number };
  /** Probability a packet is held back by up to reorderDelayUs (so later ones overtake it). */
  reorder?: number;
  reorderDelayUs?: number;
  /** Probability a packet is delivered twice. */
  duplicate?: number;
  /** Probability a packet is corrupted: 1–4 bits of its sealed frame flip and it is delivered like that. */
  corrupt?: number;
  /** Bytes the link adds around each frame for serialization (default UDP_IPV4_HEADER_BYTES). */
  headerBytes?: number;
  /** Drop packets for which this returns true (targeted loss in tests); gets the plaintext segment. */
  dropIf?: (segment: Uint8Array, nowUs: number) => boolean;
}

export interface LinkStats {
  packets: number;
  /** On-wire bytes offered to the link (frames + headers), drops included. */
  bytes: number;
  queueDrops: number;
  randomLosses: number;
  burstLosses: number;
  targetedDrops: number;
  reordered: number;
  duplicated: number;
  corrupted: number;
  maxQueueBytes: number;
}

export interface Scheduler<E> {
  schedule(atUs: number, to: E, frame: Uint8Array): void;
  /** Bookkeeping only (the receiver is not told): `frame` is a corrupted copy on its way to `to`. */
  onCorrupt(frame: Uint8Array): void;
}

export class SimLink {
  readonly stats: LinkStats = {
    packets: 0,
    bytes: 0,
    queueDrops: 0,
    randomLosses: 0,
    burstLosses: 0,
    targetedDrops: 0,
    reordered: 0,
    duplicated: 0,
    corrupted: 0,
    maxQueueBytes: 0,
  };
  private busyUntilUs = 0;
  private lastArrivalUs = 0;
  private isBad = false;

  constructor(
    public cfg: LinkConfig,
    private readonly rng: Rng,
  ) {}

  /** Put the sealed `frame` on the link at `nowUs`, addressed to `to`; `segment` is its plaintext (for dropIf). */
  send<E>(nowUs: number, frame: Uint8Array, to: E, net: Scheduler<E>, segment: Uint8Array = frame): void {
    const c = this.cfg;
    const rng = this.rng;
    const size = frame.length + (c.headerBytes ?? UDP_IPV4_HEADER_BYTES);
    this.stats.packets++;
    this.stats.bytes += size;
    if (c.dropIf && c.dropIf(segment, nowUs)) {
      this.stats.targetedDrops++;
      return;
    }
    let departUs = nowUs;
    const rate = c.rateBps ?? 0;
    if (rate > 0) {
      const backlogUs = this.busyUntilUs > nowUs ? this.busyUntilUs - nowUs : 0;
      const queued = (backlogUs * rate) / 1e6;
      if (queued + size > (c.queueBytes ?? Infinity)) {
        this.stats.queueDrops++;
        return;
      }
      if (queued + size > this.stats.maxQueueBytes) this.stats.maxQueueBytes = queued + size;
      departUs = (this.busyUntilUs > nowUs ? this.busyUntilUs : nowUs) + (size * 1e6) / rate;
      this.busyUntilUs = departUs;
    }
    if (c.burstLoss) {
      const b = c.burstLoss;
      this.isBad = this.isBad ? !rng.chance(b.pExitBad) : rng.chance(b.pEnterBad);
      if (this.isBad && rng.chance(b.lossInBad)) {
        this.stats.burstLosses++;
        return;
      }
    }
    if (c.loss && rng.chance(c.loss)) {
      this.stats.randomLosses++;
      return;
    }
    let arriveUs = departUs + c.delayUs + (c.jitterUs ? rng.next() * c.jitterUs : 0);
    if (arriveUs < this.lastArrivalUs) arriveUs = this.lastArrivalUs;
    this.lastArrivalUs = arriveUs;
    if (c.reorder && rng.chance(c.reorder)) {
      this.stats.reordered++;
      arriveUs += rng.next() * (c.reorderDelayUs ?? c.delayUs);
    }
    if (c.corrupt && rng.chance(c.corrupt)) {
      this.stats.corrupted++;
      const copy = frame.slice();
      const flips = 1 + rng.int(4);
      for (let i = 0; i < flips; i++) copy[rng.int(copy.length)] ^= 1 << rng.int(8);
      // Two flips of the same bit cancel out: a frame counted as corrupted must differ from what was sent.
      while (copy.every((b, i) => b === frame[i])) copy[rng.int(copy.length)] ^= 1 << rng.int(8);
      net.onCorrupt(copy);
      net.schedule(arriveUs, to, copy);
      return;
    }
    net.schedule(arriveUs, to, frame);
    if (c.duplicate && rng.chance(c.duplicate)) {
      this.stats.duplicated++;
      net.schedule(arriveUs + rng.next() * (c.reorderDelayUs ?? c.delayUs), to, frame);
    }
  }
}
