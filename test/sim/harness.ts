// Shared set-up for the simulation tests: deterministic payloads, a sacrificial connection that swallows
// corrupted segments (the real tunnel's AEAD would drop them; here they prove decode/handle never throw).
import { Rng } from '../../src/core/rng.js';
import { Connection } from '../../src/transport/connection.js';
import { decodeSegment, peekSegmentHeader, decodeDatagram } from '../../src/wire/segment.js';
import type { SimNet } from './pair.js';

/** `n` pseudo-random bytes from `seed` (fast: one u32 per 4 bytes). */
export function randomBytes(n: number, seed: number): Uint8Array {
  const rng = new Rng(seed);
  const words = new Uint32Array(Math.ceil(n / 4));
  for (let i = 0; i < words.length; i++) words[i] = rng.nextU32();
  return new Uint8Array(words.buffer, 0, n);
}

/** Feed corrupted copies to the codecs and to a throwaway connection; count what they rejected. */
export function installCorruptionProbe(net: SimNet): { seen: number; rejected: number } {
  const probe = { seen: 0, rejected: 0 };
  let victim: Connection | null = null;
  net.corruptSink = (bytes) => {
    probe.seen++;
    peekSegmentHeader(bytes);
    decodeDatagram(bytes);
    const d = decodeSegment(bytes);
    if (!d.ok) {
      probe.rejected++;
      return;
    }
    if (victim === null || victim.isDrained()) {
      victim = Connection.connect(
        { localPort: d.value.dstPort, remotePort: d.value.srcPort, connId: d.value.connId },
        net.nowUs,
      );
    }
    const r = victim.handle(bytes, net.nowUs);
    if (!r.ok) probe.rejected++;
    victim.handleTimeout(net.nowUs);
    const scratch = new Uint8Array(1420);
    while (victim.pollTransmit(net.nowUs, scratch) > 0);
    while (victim.pollEvent() !== null);
  };
  return probe;
}

export function mbit(bytesPerSecond: number): string {
  return ((bytesPerSecond * 8) / 1e6).toFixed(1);
}

/** Jain's fairness index of the throughputs: (Σx)² / (n·Σx²); 1 = perfectly fair. */
export function jainIndex(xs: number[]): number {
  const sum = xs.reduce((a, b) => a + b, 0);
  const sq = xs.reduce((a, b) => a + b * b, 0);
  return (sum * sum) / (xs.length * sq);
}
