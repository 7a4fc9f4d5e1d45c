// Fuzz: every wire decoder is total — any bytes give a Result (never an exception, never a hang), never
// modify their input, and whatever they accept re-encodes to the same bytes. Seeded: PILOT_SEED=<seed> replays
// a failure; PILOT_FUZZ_ITERS raises the count (default 100,000 random + 100,000 mutated inputs per run, each
// fed to every decoder).
import test from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../../src/core/rng.js';
import type { Result } from '../../../src/core/result.js';
import { bytesEqual, toHex, writeU16, writeU32 } from '../../../src/wire/bytes.js';
import {
  decodeAddr,
  encodeAddr,
  formatAddr,
  formatSocketAddr,
  parseAddr,
  parseSocketAddr,
  socketAddrEquals,
  addrEquals,
} from '../../../src/wire/address.js';
import { decodePacket, encodePacket, packetChecksum, type Packet } from '../../../src/wire/header.js';
import {
  decodeLegacyFrame,
  decodeLegacyNonce,
  decodePila,
  decodePilk,
  decodePilp,
  decodePils,
  decodePilt,
  encodeLegacyFrame,
  encodeLegacyNonce,
  legacyFrameKind,
  type LegacyFrame,
} from '../../../src/wire/legacy-frame.js';
import { decodeLegacySack, encodeLegacySack, isLegacySackPayload } from '../../../src/wire/legacy-control.js';
import { SEED } from './arbitraries.js';
import * as V from './vectors.js';

const ITERS = Math.max(100_000, Number(process.env.PILOT_FUZZ_ITERS ?? 0) || 0);
const KINDS = [null, 'PILA', 'PILS', 'PILP', 'PILT', 'PILK'];

function isResult(r: unknown): r is Result<unknown> {
  if (typeof r !== 'object' || r === null) return false;
  const o = r as { ok?: unknown; value?: unknown; error?: { code?: unknown; message?: unknown } };
  if (o.ok === true) return o.value !== undefined;
  return o.ok === false && typeof o.error?.code === 'string' && typeof o.error.message === 'string';
}

// ---- generators (all from the seeded Rng) ---------------------------------------------------------------

function randBytes(rng: Rng, n: number): Uint8Array {
  const b = new Uint8Array(n);
  let i = 0;
  for (; i + 4 <= n; i += 4) writeU32(b, i, rng.nextU32());
  for (; i < n; i++) b[i] = rng.nextU32() & 0xff;
  return b;
}

function randPacket(rng: Rng): Packet {
  const plen = rng.chance(0.3) ? 0 : rng.chance(0.02) ? rng.int(5000) : rng.int(200);
  return {
    version: 1,
    flags: rng.int(16),
    protocol: rng.chance(0.8) ? 1 + rng.int(3) : rng.int(256),
    src: { network: rng.chance(0.7) ? 0 : rng.int(65536), node: rng.nextU32() },
    dst: { network: rng.chance(0.7) ? 0 : rng.int(65536), node: rng.nextU32() },
    srcPort: rng.int(65536),
    dstPort: rng.int(65536),
    seq: rng.nextU32(),
    ack: rng.nextU32(),
    window: rng.int(65536),
    payload: randBytes(rng, plen),
  };
}

function must(r: Result<Uint8Array>): Uint8Array {
  if (!r.ok) throw new Error('fuzz corpus encode failed: ' + r.error.message);
  return r.value.slice();
}

function randFrame(rng: Rng): Uint8Array {
  const node = rng.nextU32();
  let f: LegacyFrame;
  switch (rng.int(5)) {
    case 0:
      f = { kind: 'PILT', packet: randPacket(rng) };
      break;
    case 1:
      f = { kind: 'PILS', node, nonce: randBytes(rng, 12), ciphertext: randBytes(rng, 16 + rng.int(120)) };
      break;
    case 2:
      f = { kind: 'PILK', node, x25519Pub: randBytes(rng, 32) };
      break;
    case 3:
      f = { kind: 'PILA', node, x25519Pub: randBytes(rng, 32), ed25519Pub: randBytes(rng, 32), signature: randBytes(rng, 64) };
      break;
    default:
      f = { kind: 'PILP' };
  }
  return must(encodeLegacyFrame(f));
}

function corpus(rng: Rng): Uint8Array[] {
  const c: Uint8Array[] = [
    V.PILP_FROM_NODE1,
    V.PILA_FROM_NODE1,
    V.PILA_FROM_NODE2,
    V.PILT_SYN_FROM_NODE2,
    V.PILS_FROM_NODE1,
    V.PILS_FROM_NODE2,
    V.PILS_76_FROM_NODE2,
  ].map(V.hex);
  c.push(V.hex(V.PILT_SYN_FROM_NODE2).subarray(4).slice());
  for (let i = 0; i < 300; i++) {
    c.push(randFrame(rng));
    c.push(must(encodePacket(randPacket(rng))));
  }
  for (let i = 0; i < 50; i++) {
    c.push(must(encodeAddr({ network: rng.int(65536), node: rng.nextU32() })));
    const n = 1 + rng.int(4);
    c.push(must(encodeLegacySack(Array.from({ length: n }, () => ({ left: rng.nextU32(), right: rng.nextU32() })))));
    c.push(must(encodeLegacyNonce(rng.nextU32(), rng.nextU32())));
  }
  return c;
}

/** Recompute the inner packet checksum so mutations reach the code after the CRC check. */
function fixCrc(b: Uint8Array): void {
  const off = legacyFrameKind(b) === 'PILT' ? 4 : 0;
  if (b.length < off + 34) return;
  const total = Math.min(b.length - off, 34 + ((b[off + 2]! << 8) | b[off + 3]!));
  writeU32(b, off + 30, packetChecksum(b, off, total));
}

function mutate(rng: Rng, src: Uint8Array, all: Uint8Array[]): Uint8Array {
  let b = src.slice();
  const rounds = 1 + rng.int(3);
  for (let r = 0; r < rounds; r++) {
    switch (rng.int(9)) {
      case 0: // bit flips
        for (let k = 1 + rng.int(4); k > 0 && b.length > 0; k--) b[rng.int(b.length)]! ^= 1 << rng.int(8);
        break;
      case 1: // byte overwrites
        for (let k = 1 + rng.int(4); k > 0 && b.length > 0; k--) b[rng.int(b.length)] = rng.int(256);
        break;
      case 2: // truncation
        b = b.slice(0, rng.int(b.length + 1));
        break;
      case 3: {
        // extension
        const ext = randBytes(rng, 1 + rng.int(64));
        const nb = new Uint8Array(b.length + ext.length);
        nb.set(b);
        nb.set(ext, b.length);
        b = nb;
        break;
      }
      case 4: // payload-length field of a packet / PILT inner packet
        if (b.length >= 8) writeU16(b, legacyFrameKind(b) === 'PILT' ? 6 : 2, rng.chance(0.5) ? rng.int(65536) : rng.int(300));
        break;
      case 5: // version / magic byte
        if (b.length >= 5) {
          if (rng.chance(0.5)) b[3] = [0x41, 0x53, 0x50, 0x54, 0x4b, rng.int(256)][rng.int(6)]!;
          else b[legacyFrameKind(b) === 'PILT' ? 4 : 0] = (rng.int(16) << 4) | rng.int(16);
        }
        break;
      case 6: {
        // splice with another corpus entry
        const o = all[rng.int(all.length)]!;
        const cut = rng.int(b.length + 1);
        const cut2 = rng.int(o.length + 1);
        const nb = new Uint8Array(cut + o.length - cut2);
        nb.set(b.subarray(0, cut));
        nb.set(o.subarray(cut2), cut);
        b = nb;
        break;
      }
      case 7: // SACK count byte
        if (b.length >= 5) b[4] = rng.int(8);
        break;
      default:
        break; // only the CRC fix below
    }
  }
  if (rng.chance(0.6)) fixCrc(b);
  return b;
}

function randomInput(rng: Rng): Uint8Array {
  const pick = rng.int(10);
  let n: number;
  if (pick < 5) n = rng.int(64);
  else if (pick < 8) n = [4, 5, 6, 13, 34, 35, 36, 38, 40, 136, 137][rng.int(11)]! + rng.int(3) - 1;
  else if (pick < 9) n = rng.int(400);
  else n = rng.chance(0.01) ? 65_000 + rng.int(5_000) : rng.int(5_000);
  const b = randBytes(rng, Math.max(0, n));
  if (b.length >= 4 && rng.chance(0.5)) {
    const magic = [0x50494c41, 0x50494c53, 0x50494c50, 0x50494c54, 0x50494c4b][rng.int(5)]!;
    writeU32(b, 0, magic);
  }
  if (rng.chance(0.3)) fixCrc(b);
  return b;
}

// ---- decoders under test --------------------------------------------------------------------------------

type Check = (input: Uint8Array, out: unknown) => void;
const resultDecoders: [string, (b: Uint8Array) => Result<unknown>, Check?][] = [
  [
    'decodePacket',
    decodePacket,
    (b, r) => {
      const x = r as Result<Packet>;
      if (x.ok) assert.ok(bytesEqual(must(encodePacket(x.value)), b), 'accepted packet must re-encode identically');
    },
  ],
  ['decodePacket(allowTrailing)', (b) => decodePacket(b, { allowTrailing: true })],
  [
    'decodeLegacyFrame',
    decodeLegacyFrame,
    (b, r) => {
      const x = r as Result<LegacyFrame>;
      if (x.ok) assert.ok(bytesEqual(must(encodeLegacyFrame(x.value)), b), 'accepted frame must re-encode identically');
    },
  ],
  ['decodePilt', decodePilt],
  ['decodePils', decodePils],
  ['decodePilk', decodePilk],
  ['decodePila', decodePila],
  ['decodePilp', decodePilp],
  [
    'decodeAddr',
    (b) => decodeAddr(b),
    (b, r) => {
      const x = r as Result<{ network: number; node: number }>;
      if (x.ok) assert.ok(bytesEqual(must(encodeAddr(x.value)), b));
    },
  ],
  ['decodeAddr(offset)', (b) => decodeAddr(b, b.length % 7)],
  ['decodeLegacyNonce', decodeLegacyNonce],
  [
    'decodeLegacySack',
    decodeLegacySack,
    (b, r) => {
      const x = r as Result<{ left: number; right: number }[]>;
      if (x.ok) {
        const e = must(encodeLegacySack(x.value));
        assert.ok(bytesEqual(e, b.subarray(0, e.length)), 'accepted SACK must re-encode to its prefix');
      }
    },
  ],
];

test(`fuzz: ${ITERS} random + ${ITERS} mutated frames through every decoder (seed ${SEED})`, { timeout: 300_000 }, () => {
  const rng = new Rng(SEED);
  const all = corpus(rng);
  let accepted = 0;
  let mutatedAccepted = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < 2 * ITERS; i++) {
    const mutated = (i & 1) === 1;
    const input = mutated ? mutate(rng, all[rng.int(all.length)]!, all) : randomInput(rng);
    const before = input.slice();
    let name = '';
    try {
      for (const [n, dec, check] of resultDecoders) {
        name = n;
        const r = dec(input);
        if (!isResult(r)) throw new Error(`returned a non-Result: ${JSON.stringify(r)}`);
        if (r.ok) {
          accepted++;
          if (mutated) mutatedAccepted++;
        }
        check?.(input, r);
      }
      name = 'legacyFrameKind';
      if (!KINDS.includes(legacyFrameKind(input))) throw new Error('legacyFrameKind returned a non-kind');
      name = 'isLegacySackPayload';
      if (typeof isLegacySackPayload(input) !== 'boolean') throw new Error('isLegacySackPayload returned a non-boolean');
      name = 'input unchanged';
      if (!bytesEqual(before, input)) throw new Error('a decoder modified its input');
    } catch (e) {
      assert.fail(
        `${name} failed on input #${i} (${mutated ? 'mutated' : 'random'}, ${input.length} bytes) ` +
          `seed=${SEED} — replay with PILOT_SEED=${SEED}\n` +
          `input: ${toHex(before.subarray(0, 300))}${before.length > 300 ? '…' : ''}\n${(e as Error).stack ?? e}`,
      );
    }
  }
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  // Sanity: the mutator must reach the accepting paths too, or the fuzz only tests the first length check.
  assert.ok(mutatedAccepted > ITERS / 20, `too few accepted inputs (${mutatedAccepted}); seed=${SEED}`);
  console.log(`# fuzz: ${2 * ITERS} inputs × ${resultDecoders.length + 2} decoders in ${ms.toFixed(0)} ms, ${accepted} accepted (seed ${SEED})`);
});

// ---- text forms -----------------------------------------------------------------------------------------

const ALPHABET = '0123456789abcdefABCDEFxX:.:.-+_ \n\t0000FFFF٣é';

function randText(rng: Rng): string {
  const n = rng.int(rng.chance(0.01) ? 2000 : 30);
  let s = '';
  for (let i = 0; i < n; i++) s += ALPHABET[rng.int(ALPHABET.length)];
  return s;
}

function mutateText(rng: Rng, s: string): string {
  const chars = [...s];
  for (let k = 1 + rng.int(3); k > 0; k--) {
    const op = rng.int(4);
    const at = rng.int(chars.length + 1);
    if (op === 0) chars.splice(at, 1);
    else if (op === 1) chars.splice(at, 0, ALPHABET[rng.int(ALPHABET.length)]!);
    else if (op === 2 && chars.length > 0) chars[rng.int(chars.length)] = ALPHABET[rng.int(ALPHABET.length)]!;
    else chars.splice(at, rng.int(4));
  }
  return chars.join('');
}

test(`fuzz: ${ITERS} random + ${ITERS} mutated address texts through parseAddr/parseSocketAddr (seed ${SEED})`, { timeout: 300_000 }, () => {
  const rng = new Rng(SEED ^ 0x5eed);
  let accepted = 0;
  for (let i = 0; i < 2 * ITERS; i++) {
    let s: string;
    if (i & 1) {
      const a = { network: rng.chance(0.5) ? 0 : rng.int(65536), node: rng.nextU32() };
      const base = rng.chance(0.5) ? formatAddr(a) : formatSocketAddr({ addr: a, port: rng.int(65536) });
      s = rng.chance(0.1) ? base : mutateText(rng, base);
    } else s = randText(rng);
    try {
      const a = parseAddr(s);
      assert.ok(isResult(a));
      if (a.ok) {
        accepted++;
        const again = parseAddr(formatAddr(a.value));
        assert.ok(again.ok && addrEquals(again.value, a.value));
      }
      const sa = parseSocketAddr(s);
      assert.ok(isResult(sa));
      if (sa.ok) {
        accepted++;
        const again = parseSocketAddr(formatSocketAddr(sa.value));
        assert.ok(again.ok && socketAddrEquals(again.value, sa.value));
      }
    } catch (e) {
      assert.fail(`text input #${i} ${JSON.stringify(s)} seed=${SEED} — replay with PILOT_SEED=${SEED}\n${(e as Error).stack}`);
    }
  }
  assert.ok(accepted > 1000, `too few accepted texts (${accepted}); seed=${SEED}`);
});
