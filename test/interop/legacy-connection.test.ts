// src/transport/legacy-connection.ts against a model of the original's stream code (pkg/daemon/daemon.go
// handleStreamPacket, ports.go DeliverInOrder/SACKBlocks/ProcessAck, CloseConnection): the model is written
// from the original's observable rules, simplified where timing does not matter (ACKs are immediate).
import test from 'node:test';
import assert from 'node:assert/strict';
import { LegacyConnection, isLegacyPongFor, legacyPingPacket, legacyRstFor } from '../../src/transport/legacy-connection.js';
import { decodePacket, encodePacket, FLAG_ACK, FLAG_FIN, FLAG_RST, FLAG_SYN, PROTO_STREAM, type Packet } from '../../src/wire/header.js';
import { decodeLegacySack, encodeLegacySack, isLegacySackPayload, legacyPongFor, type SackBlock } from '../../src/wire/legacy-control.js';
import { decodePilt } from '../../src/wire/legacy-frame.js';
import type { VirtualAddr } from '../../src/wire/address.js';
import { findInteropDir, readUdpFrames } from './captures.js';

const US: VirtualAddr = { network: 0, node: 1 };
const THEM: VirtualAddr = { network: 0, node: 2 };
const MSS = 4096;
const seqAfter = (a: number, b: number) => ((a - b) | 0) > 0;

/** The original's per-connection behaviour, one packet in → packets out. */
class OriginalPeer {
  sendSeq = 0;
  recvAck = 0;
  expectedSeq = 0;
  state: 'syn_sent' | 'established' | 'time_wait' | 'closed' = 'closed';
  ooo = new Map<number, Uint8Array>();
  delivered: Uint8Array[] = [];
  recvClosed = false;
  unacked: { seq: number; data: Uint8Array }[] = [];
  lastAck = 0;
  peerWin = 0;
  sacksSeen: SackBlock[][] = [];
  finAcksSent = 0;
  rstSeen = false;
  constructor(
    readonly localPort: number,
    public remotePort: number,
  ) {}

  private pkt(flags: number, seq: number, ack: number, payload: Uint8Array = new Uint8Array(0), window = 512 - this.delivered.length): Packet {
    return { version: 1, flags, protocol: PROTO_STREAM, src: THEM, dst: US, srcPort: this.localPort, dstPort: this.remotePort, seq: seq >>> 0, ack: ack >>> 0, window: Math.max(0, window), payload };
  }
  syn(): Packet {
    this.state = 'syn_sent';
    this.sendSeq = 1;
    return this.pkt(FLAG_SYN, 0, 0);
  }
  send(data: Uint8Array): Packet[] {
    const out: Packet[] = [];
    for (let off = 0; off < data.length; off += MSS) {
      const d = data.subarray(off, Math.min(data.length, off + MSS));
      out.push(this.pkt(FLAG_ACK, this.sendSeq, this.recvAck, d));
      this.unacked.push({ seq: this.sendSeq, data: d });
      this.sendSeq = (this.sendSeq + d.length) >>> 0;
    }
    return out;
  }
  close(): Packet {
    this.recvClosed = true;
    const fin = this.pkt(FLAG_FIN, this.sendSeq, 0, undefined, 0);
    this.state = 'time_wait';
    return fin;
  }
  retransmitFirst(): Packet[] {
    const e = this.unacked[0];
    return e ? [this.pkt(FLAG_ACK, e.seq, this.recvAck, e.data)] : [];
  }
  handle(p: Packet): Packet[] {
    const f = p.flags;
    if ((f & FLAG_SYN) && !(f & FLAG_ACK)) {
      this.state = 'established';
      this.recvAck = p.seq + 1;
      this.expectedSeq = p.seq + 1;
      this.peerWin = p.window * MSS;
      const synack = this.pkt(FLAG_SYN | FLAG_ACK, 0, this.recvAck);
      this.sendSeq = 1;
      return [synack];
    }
    if ((f & FLAG_SYN) && (f & FLAG_ACK)) {
      if (this.state !== 'syn_sent') return [];
      this.recvAck = p.seq + 1;
      this.expectedSeq = p.seq + 1;
      this.state = 'established';
      return [this.pkt(FLAG_ACK, this.sendSeq, this.recvAck)];
    }
    if (f & FLAG_FIN) {
      this.recvClosed = true;
      this.state = 'time_wait';
      this.finAcksSent++;
      return [this.pkt(FLAG_FIN | FLAG_ACK, this.sendSeq, p.seq + 1, undefined, 0)];
    }
    if (f & FLAG_RST) {
      this.rstSeen = true;
      this.state = 'closed';
      return [];
    }
    if (!(f & FLAG_ACK)) return [];
    this.peerWin = p.window * MSS;
    if (p.ack > 0 && !seqAfter(this.lastAck, p.ack) && p.ack !== this.lastAck) {
      this.lastAck = p.ack;
      this.unacked = this.unacked.filter((e) => seqAfter(e.seq + e.data.length, p.ack));
    }
    if (isLegacySackPayload(p.payload)) {
      const b = decodeLegacySack(p.payload);
      assert.ok(b.ok);
      this.sacksSeen.push(b.value);
      return [];
    }
    if (p.payload.length === 0 || this.state !== 'established' || this.recvClosed) return [];
    // DeliverInOrder: exact seq or an out-of-order copy by exact seq.
    if (p.seq === this.expectedSeq) {
      this.delivered.push(p.payload.slice());
      this.expectedSeq += p.payload.length;
      for (let found = true; found; ) {
        found = false;
        const d = this.ooo.get(this.expectedSeq);
        if (d) {
          this.ooo.delete(this.expectedSeq);
          this.delivered.push(d);
          this.expectedSeq += d.length;
          found = true;
        }
      }
    } else if (seqAfter(p.seq, this.expectedSeq) && !this.ooo.has(p.seq) && this.ooo.size < 128) {
      this.ooo.set(p.seq, p.payload.slice());
    }
    this.recvAck = this.expectedSeq;
    const ack = this.pkt(FLAG_ACK, this.sendSeq, this.recvAck);
    if (this.ooo.size > 0) {
      const segs = [...this.ooo.entries()].sort((a, b) => a[0] - b[0]);
      const blocks: SackBlock[] = [];
      for (const [s, d] of segs) {
        const last = blocks[blocks.length - 1];
        if (last && s <= last.right) last.right = Math.max(last.right, s + d.length);
        else blocks.push({ left: s, right: s + d.length });
      }
      const enc = encodeLegacySack(blocks.slice(0, 4));
      assert.ok(enc.ok);
      ack.payload = enc.value;
    }
    return [ack];
  }
  bytes(): Uint8Array {
    return new Uint8Array(Buffer.concat(this.delivered));
  }
}

/** Runs our connection against the model on a virtual clock; `drop(i)` loses our i-th transmitted packet. */
class Harness {
  now = 0;
  sent: Packet[] = [];
  events: string[] = [];
  received: Uint8Array[] = [];
  private n = 0;
  private buf = new Uint8Array(34 + MSS);
  constructor(
    readonly conn: LegacyConnection,
    readonly peer: OriginalPeer,
    readonly drop: (i: number, p: Packet) => boolean = () => false,
  ) {}
  /** Drive ours: transmit everything, deliver to the peer, deliver the peer's answers back. */
  /** Runs until quiet; time only advances to timers within `horizonUs` of the start (keepalive/idle are 30/120 s). */
  pump(rounds = 10_000, horizonUs = 20_000_000): void {
    const until = this.now + horizonUs;
    for (let r = 0; r < rounds; r++) {
      let moved = false;
      for (let len = this.conn.pollTransmit(this.now, this.buf); len > 0; len = this.conn.pollTransmit(this.now, this.buf)) {
        moved = true;
        const d = decodePacket(this.buf.subarray(0, len));
        assert.ok(d.ok, 'we emit valid packets with a good checksum');
        const p = { ...d.value, payload: d.value.payload.slice() };
        this.sent.push(p);
        if (this.drop(this.n++, p)) continue;
        for (const a of this.peer.handle(p)) this.feed(a);
      }
      this.drain();
      if (!moved) {
        const t = this.conn.pollTimeout();
        if (t === null || t > until) return;
        this.now = Math.max(this.now, t);
        this.conn.handleTimeout(this.now);
        this.drain();
        if (this.conn.pollTimeout() === null && this.conn.isDrained()) return;
      }
      if (this.conn.isDrained()) return;
    }
  }
  sacksFed = 0;
  feed(p: Packet): void {
    if (isLegacySackPayload(p.payload)) this.sacksFed++;
    const enc = encodePacket(p);
    assert.ok(enc.ok);
    const r = this.conn.handle(enc.value, this.now);
    assert.ok(r.ok || r.error.code === 'invalid_argument');
    this.drain();
  }
  drain(): void {
    for (let e = this.conn.pollEvent(); e; e = this.conn.pollEvent()) {
      this.events.push(e.kind === 'closed' ? `closed:${e.error?.code ?? 'ok'}` : e.kind);
      if (e.kind === 'readable') {
        const b = new Uint8Array(this.conn.readableBytes);
        this.received.push(b.subarray(0, this.conn.read(b)));
        this.drain();
      }
    }
  }
  got(): Uint8Array {
    return new Uint8Array(Buffer.concat(this.received));
  }
}

function pattern(n: number, seed = 7): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

const dir = findInteropDir();
test('the captured PILT SYN is accepted and answered with the original’s SYN|ACK', { skip: dir ? false : 'no captures' }, () => {
  const f = readUdpFrames(dir!).find((x) => x.bytes[3] === 0x54)!;
  const syn = decodePilt(f.bytes);
  assert.ok(syn.ok);
  const c = LegacyConnection.accept(syn.value.packet, { network: 0, node: 1 }, {}, 0);
  assert.ok(c.ok);
  assert.equal(c.value.pollEvent()?.kind, 'connected', 'established at once, as the original responder');
  const buf = new Uint8Array(4200);
  const n = c.value.pollTransmit(0, buf);
  const p = decodePacket(buf.subarray(0, n));
  assert.ok(p.ok);
  assert.deepEqual(
    { flags: p.value.flags, src: p.value.src, dst: p.value.dst, srcPort: p.value.srcPort, dstPort: p.value.dstPort, seq: p.value.seq, ack: p.value.ack, window: p.value.window },
    { flags: FLAG_SYN | FLAG_ACK, src: { network: 0, node: 1 }, dst: { network: 0, node: 2 }, srcPort: 7, dstPort: 49152, seq: 0, ack: 1, window: 512 },
  );
  // A retransmitted SYN gets the same SYN|ACK again.
  assert.ok(c.value.handle(f.bytes.subarray(4), 1000).ok);
  const n2 = c.value.pollTransmit(1000, buf);
  const p2 = decodePacket(buf.subarray(0, n2));
  assert.ok(p2.ok && p2.value.flags === (FLAG_SYN | FLAG_ACK) && p2.value.seq === 0 && p2.value.ack === 1);
});

test('we dial an original: SYN, data in 4096-byte ACK segments, FIN only after everything is acked, FIN|ACK closes', () => {
  const peer = new OriginalPeer(1001, 0);
  const conn = LegacyConnection.connect({ local: US, remote: THEM, localPort: 49200, remotePort: 1001 }, {}, 0);
  peer.remotePort = 49200;
  const h = new Harness(conn, peer);
  const data = pattern(100_000);
  assert.equal(conn.write(data), data.length);
  conn.finish();
  h.pump();
  assert.equal(h.sent[0]!.flags, FLAG_SYN);
  assert.equal(h.sent[0]!.seq, 0);
  assert.ok(h.sent.filter((p) => p.payload.length > 0).every((p) => p.flags === FLAG_ACK && p.payload.length <= MSS));
  assert.deepEqual(peer.bytes(), data);
  const finIdx = h.sent.findIndex((p) => p.flags & FLAG_FIN);
  assert.ok(finIdx > 0);
  assert.equal(h.sent[finIdx]!.flags, FLAG_FIN, 'a bare FIN like the original');
  assert.equal(h.sent[finIdx]!.seq, 1 + data.length, 'FIN seq = end of data');
  assert.equal(peer.finAcksSent, 1);
  assert.deepEqual(h.events, ['connected', 'writable', 'finished', 'closed:ok']);
  assert.ok(conn.isDrained());
  assert.equal(h.sent.filter((p) => p.flags & FLAG_FIN).length, 1, 'no answer to the FIN|ACK');
});

test('an original dials us and sends with loss: we SACK in its encoding, it retransmits, we deliver in order; its FIN gets FIN|ACK', () => {
  const peer = new OriginalPeer(49152, 1001);
  const syn = peer.syn();
  const acc = LegacyConnection.accept(syn, US, {}, 0);
  assert.ok(acc.ok);
  const conn = acc.value;
  const h = new Harness(conn, peer);
  h.pump();
  assert.equal(peer.state, 'established');
  const data = pattern(40_000, 3);
  const segs = peer.send(data);
  // Lose segments 1 and 4, deliver the rest in order.
  segs.forEach((p, i) => {
    if (i !== 1 && i !== 4) h.feed(p);
  });
  h.pump(1);
  const sacks = h.sent.filter((p) => isLegacySackPayload(p.payload));
  assert.ok(sacks.length >= 1, 'immediate ACK with SACK on out-of-order data');
  const last = decodeLegacySack(sacks[sacks.length - 1]!.payload);
  assert.ok(last.ok);
  assert.deepEqual(last.value, [
    { left: 1 + 2 * MSS, right: 1 + 4 * MSS },
    { left: 1 + 5 * MSS, right: 1 + data.length },
  ]);
  assert.equal(sacks[sacks.length - 1]!.ack, 1 + MSS, 'cumulative ack stops at the hole');
  // The original retransmits the first unacked segment per RTO.
  for (let i = 0; i < 3; i++) {
    for (const p of peer.retransmitFirst()) h.feed(p);
    h.pump(1);
  }
  assert.deepEqual(h.got(), data);
  h.feed(peer.close());
  h.pump();
  const finack = h.sent.find((p) => p.flags === (FLAG_FIN | FLAG_ACK));
  assert.ok(finack, 'FIN answered with FIN|ACK');
  assert.equal(finack.ack, 1 + data.length + 1);
  assert.deepEqual(h.events.slice(-2), ['finished', 'closed:ok']);
  assert.equal(conn.write(new Uint8Array(1)), -1, 'no half-close: writing after the peer’s FIN fails');
});

test('our losses are repaired from the original’s SACK blocks (and by RTO), keeping segment boundaries', () => {
  const peer = new OriginalPeer(1001, 49300);
  const conn = LegacyConnection.connect({ local: US, remote: THEM, localPort: 49300, remotePort: 1001 }, {}, 0);
  const dropped = new Set<number>();
  const h = new Harness(conn, peer, (i, p) => {
    // Lose the 2nd and 7th data segments once, and one tail segment once (needs the RTO).
    const key = p.seq;
    if (p.payload.length > 0 && (i === 2 || i === 7 || p.seq === 1 + 24 * MSS) && !dropped.has(key)) {
      dropped.add(key);
      return true;
    }
    return false;
  });
  const data = pattern(25 * MSS, 11);
  conn.write(data);
  conn.finish();
  h.pump();
  assert.deepEqual(peer.bytes(), data);
  assert.ok(h.sacksFed > 0, 'the original reported the holes with SACK');
  const segStarts = new Set(h.sent.filter((p) => p.payload.length > 0).map((p) => `${p.seq}:${p.payload.length}`));
  assert.equal(segStarts.size, 25, 'retransmissions reuse the original boundaries');
  assert.ok(conn.stats().retransmits >= 3);
  assert.deepEqual(h.events.slice(-2), ['finished', 'closed:ok']);
});

test('data that would read as a SACK payload is split so the original delivers it', () => {
  const peer = new OriginalPeer(1001, 49400);
  const conn = LegacyConnection.connect({ local: US, remote: THEM, localPort: 49400, remotePort: 1001 }, {}, 0);
  const h = new Harness(conn, peer);
  const tricky = new Uint8Array([0x53, 0x41, 0x43, 0x4b, 1, 0, 0, 0, 1, 0, 0, 0, 2, 9, 9, 9]);
  conn.write(tricky);
  conn.finish();
  h.pump();
  assert.deepEqual(peer.bytes(), tricky);
  const first = h.sent.find((p) => p.payload.length > 0)!;
  assert.equal(first.payload.length, 1);
});

test('RST from the peer closes with connection_failed; reset() sends the original’s RST', () => {
  const peer = new OriginalPeer(1001, 49500);
  const conn = LegacyConnection.connect({ local: US, remote: THEM, localPort: 49500, remotePort: 1001 }, {}, 0);
  const h = new Harness(conn, peer);
  h.pump(1);
  h.feed({ ...legacyRstFor({ ...h.sent[0]!, src: US, dst: THEM, srcPort: 49500, dstPort: 1001 } as Packet, THEM), src: THEM, dst: US, srcPort: 1001, dstPort: 49500 });
  assert.equal(h.events.at(-1), 'closed:connection_failed');

  const peer2 = new OriginalPeer(1001, 49501);
  const c2 = LegacyConnection.connect({ local: US, remote: THEM, localPort: 49501, remotePort: 1001 }, {}, 0);
  const h2 = new Harness(c2, peer2);
  h2.pump(1);
  c2.reset();
  h2.pump(1);
  assert.equal(h2.sent.at(-1)!.flags, FLAG_RST);
  assert.ok(peer2.rstSeen);
});

test('SYN retransmission backs off 1 s → 8 s and the dial fails after 6 retries', () => {
  const conn = LegacyConnection.connect({ local: US, remote: THEM, localPort: 49600, remotePort: 7 }, {}, 0);
  const h = new Harness(conn, new OriginalPeer(7, 49600), () => true);
  h.pump(10_000, 100_000_000);
  const syns = h.sent.filter((p) => p.flags === FLAG_SYN);
  assert.equal(syns.length, 7);
  assert.equal(h.events.at(-1), 'closed:connection_failed');
});

test('a peer FIN ahead of missing data (the original never resends after FIN) closes with an error after the grace', () => {
  const peer = new OriginalPeer(49152, 1001);
  const acc = LegacyConnection.accept(peer.syn(), US, {}, 0);
  assert.ok(acc.ok);
  const h = new Harness(acc.value, peer);
  h.pump();
  const segs = peer.send(pattern(3 * MSS));
  h.feed(segs[0]!);
  h.feed(segs[2]!);
  h.feed(peer.close());
  h.pump();
  assert.equal(h.events.at(-1), 'closed:connection_failed');
  assert.equal(h.got().length, MSS);
});

test('ping helpers match the original’s control protocol', () => {
  const ping = legacyPingPacket(US, THEM, 49152, 5, new Uint8Array([1, 2]));
  const pong = legacyPongFor(ping, THEM);
  assert.ok(pong);
  assert.ok(isLegacyPongFor(pong, 49152, 5));
  assert.equal(isLegacyPongFor(pong, 49152, 6), false);
});
