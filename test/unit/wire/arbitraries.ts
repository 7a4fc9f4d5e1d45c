// fast-check arbitraries for the wire codecs, and the seed shared with the fuzz loop (PILOT_SEED replays).
import fc from 'fast-check';
import { seedFromEnv } from '../../../src/core/rng.js';
import type { VirtualAddr, SocketAddr } from '../../../src/wire/address.js';
import type { Packet } from '../../../src/wire/header.js';
import type { LegacyFrame } from '../../../src/wire/legacy-frame.js';
import type { SackBlock } from '../../../src/wire/legacy-control.js';

export const SEED = seedFromEnv();
/** fast-check parameters: seeded from PILOT_SEED so a failure replays; the seed is in every failure message. */
export function fcParams(numRuns = 1000): fc.Parameters<unknown> {
  return { seed: SEED | 0, numRuns };
}

// Plain objects (fast-check 4 makes null-prototype records by default, which deepStrictEqual rejects).
const NP = { noNullPrototype: true } as const;

export const u16 = fc.integer({ min: 0, max: 0xffff });
export const u32 = fc.integer({ min: 0, max: 0xffffffff });
export const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });

export const addrArb: fc.Arbitrary<VirtualAddr> = fc.record({ network: u16, node: u32 }, NP);
export const socketArb: fc.Arbitrary<SocketAddr> = fc.record({ addr: addrArb, port: u16 }, NP);

export const packetArb = (maxPayload = 600): fc.Arbitrary<Packet> =>
  fc.record({
    version: fc.constant(1),
    flags: fc.integer({ min: 0, max: 15 }),
    protocol: fc.integer({ min: 0, max: 255 }),
    src: addrArb,
    dst: addrArb,
    srcPort: u16,
    dstPort: u16,
    seq: u32,
    ack: u32,
    window: u16,
    payload: fc.uint8Array({ maxLength: maxPayload }),
  }, NP);

export const legacyFrameArb: fc.Arbitrary<LegacyFrame> = fc.oneof(
  packetArb(300).map((packet): LegacyFrame => ({ kind: 'PILT', packet })),
  fc
    .record({ node: u32, nonce: bytes(12), ciphertext: fc.uint8Array({ minLength: 16, maxLength: 300 }) }, NP)
    .map((r): LegacyFrame => ({ kind: 'PILS', ...r })),
  fc.record({ node: u32, x25519Pub: bytes(32) }, NP).map((r): LegacyFrame => ({ kind: 'PILK', ...r })),
  fc
    .record({ node: u32, x25519Pub: bytes(32), ed25519Pub: bytes(32), signature: bytes(64) }, NP)
    .map((r): LegacyFrame => ({ kind: 'PILA', ...r })),
  fc.constant<LegacyFrame>({ kind: 'PILP' }),
);

export const sackArb: fc.Arbitrary<SackBlock[]> = fc.array(fc.record({ left: u32, right: u32 }, NP), {
  minLength: 1,
  maxLength: 4,
});

export function seedMsg(): string {
  return `(replay with PILOT_SEED=${SEED})`;
}
