// The carrier switch as the daemon runs it, on virtual time: the path driver executes the transport choice
// (src/nat/transport-choice.ts) — UDP discovers to the beacon, the link opened after 3 s without an answer,
// MainSocket's route — and MainSocket sorts single sends and sealed batches between UDP and the link
// (relay frames to the beacon only; tcp mode sends no UDP at all).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../../src/core/logger.js';
import { ManualClock, realWallClock } from '../../../src/core/clock.js';
import { Rng } from '../../../src/core/rng.js';
import { err } from '../../../src/core/result.js';
import { PacketBatch, ipv4ToU32, type Datapath, type SendBatch } from '../../../src/datapath/index.js';
import { Driver, VirtualTimers } from '../../../src/node/driver.js';
import { PathDriver } from '../../../src/node/paths/path-driver.js';
import { MainSocket, type LinkSink } from '../../../src/node/paths/main-socket.js';
import type { CompatLink } from '../../../src/node/compat/link.js';
import type { NoiseSuite } from '../../../src/node/peers/noise-suite.js';
import { TransportChoice, type TransportMode } from '../../../src/nat/index.js';
import { BEACON_DISCOVER, BEACON_PUNCH_REQUEST, BEACON_RELAY, encodeBeaconMessage } from '../../../src/wire/beacon-message.js';

const BEACON = { ip: '198.18.0.1', port: 9001 };
const PEER = { ip: '198.18.0.2', port: 4001 };

class FakeLink implements LinkSink {
  isOpen = false;
  /** Registered at the beacon: the test says when. */
  isRegistered = false;
  opens = 0;
  closes = 0;
  discovers = 0;
  pending: Uint8Array[] = [];
  sealed: Uint8Array[] = [];
  push(d: Uint8Array): boolean {
    this.pending.push(d);
    return true;
  }
  seal(): void {
    // What the real link does in effect: the bytes are taken now.
    for (const d of this.pending.splice(0)) this.sealed.push(Uint8Array.from(d));
  }
  open(): void {
    this.opens++;
    this.isOpen = true;
  }
  close(): void {
    this.closes++;
    this.isOpen = false;
    this.isRegistered = false;
  }
  discoverNow(): void {
    this.discovers++;
  }
}

function setup(mode: TransportMode, peers = new Map<number, { nodeId: number; isUp: boolean; isRelayed: boolean; lastRecvUs: number }>()) {
  const udp: { data: Uint8Array; ip: string; port: number }[] = [];
  const datapath = {
    kind: 'dgram',
    localAddress: { ip: '0.0.0.0', port: 4000 },
    send(data: Uint8Array, ip: string, port: number) {
      udp.push({ data: Uint8Array.from(data), ip, port });
      return 1;
    },
    sendBatch(b: SendBatch) {
      for (let i = 0; i < b.count; i++) {
        const off = b.meta[i * 4]!;
        const len = b.meta[i * 4 + 1]!;
        const ipU32 = b.meta[i * 4 + 2]!;
        udp.push({ data: b.buf.slice(off, off + len), ip: `${ipU32 >>> 24}.${(ipU32 >>> 16) & 255}.${(ipU32 >>> 8) & 255}.${ipU32 & 255}`, port: b.meta[i * 4 + 3]! });
      }
      return b.count;
    },
  } as unknown as Datapath;
  const clock = new ManualClock(1_000_000);
  const timers = new VirtualTimers(clock);
  const driver = new Driver(clock, timers);
  const link = new FakeLink();
  const socket = new MainSocket(datapath, { beacon: BEACON, link, requestFlush: () => driver.requestFlush() });
  const transport = new TransportChoice({ mode, hasCompat: true, isRegistryProxied: false });
  const nat = new PathDriver({
    logger: silentLogger(),
    driver,
    rng: new Rng(1),
    wall: realWallClock,
    openExtraSocket: async () => err('internal', 'no extra sockets in this test'),
    relayOnly: mode === 'tcp',
    beaconAddr: BEACON,
    beacon2Addr: null,
    beaconEndpoint: BEACON,
    socket,
    tunnels: () => ({ handlePunchFrom: () => {}, flushTx: () => {}, probeDirect: () => {}, peers }) as unknown as NoiseSuite,
    nodeId: () => 5,
    listenHost: '0.0.0.0',
    busyPeers: () => [],
    beaconToken: () => null,
    legacyRelayed: () => {},
    acceptsPunchFrom: () => false,
    transport,
    link: link as unknown as CompatLink,
  });
  const runUntil = (us: number): void => {
    while (timers.step(us));
    clock.set(Math.max(clock.nowUs(), us));
  };
  const discoversToBeacon = (): number => udp.filter((s) => s.data[0] === BEACON_DISCOVER && s.ip === BEACON.ip && s.port === BEACON.port).length;
  const answer = (): void => {
    const r = encodeBeaconMessage({ kind: 'discover_reply', ip: '203.0.113.7', port: 40000 });
    assert.ok(r.ok);
    nat.handleBeacon(r.value, BEACON.ip, BEACON.port, clock.nowUs());
  };
  return { udp, link, socket, nat, transport, clock, runUntil, discoversToBeacon, answer };
}

function relay(len: number): Uint8Array {
  const f = new Uint8Array(len);
  f[0] = BEACON_RELAY;
  return f;
}

describe('compat carrier', () => {
  it('auto, UDP blocked: discovers 1 s apart, the link opens at 3 s and relay frames take it; an answer brings UDP back', () => {
    const w = setup('auto');
    const t0 = w.clock.nowUs();
    w.nat.start();
    w.nat.discoverEndpoint(); // registered
    w.runUntil(t0 + 2_900_000);
    assert.equal(w.link.opens, 0);
    assert.ok(w.discoversToBeacon() >= 3, `UDP discovers while deciding (${w.discoversToBeacon()})`);
    w.runUntil(t0 + 3_100_000);
    assert.equal(w.link.opens, 1);
    assert.equal(w.transport.carrier, 'wss');
    assert.equal(w.socket.route, 'relay-over-link');
    // Until the link is registered at the beacon, relay frames stay on UDP (the beacon takes them from there).
    w.udp.length = 0;
    w.socket.send(relay(50), BEACON.ip, BEACON.port);
    assert.equal(w.udp.length, 1);
    assert.equal(w.link.sealed.length + w.link.pending.length, 0);
    w.link.isRegistered = true;

    // A single relay send and a batch mixing relay frames (to the beacon) with a direct frame (to a peer).
    w.udp.length = 0;
    w.socket.send(relay(50), BEACON.ip, BEACON.port);
    const b = new PacketBatch(16, 64 * 1024);
    b.push(relay(1000), ipv4ToU32(BEACON.ip), BEACON.port);
    b.push(Uint8Array.of(0x50, 0x49, 0x4c, 0x53), ipv4ToU32(PEER.ip), PEER.port);
    b.push(relay(900), ipv4ToU32(BEACON.ip), BEACON.port);
    w.socket.sendBatch(b);
    w.socket.send(Uint8Array.of(BEACON_DISCOVER, 0, 0, 0, 5), BEACON.ip, BEACON.port); // not a relay frame: UDP
    w.link.seal();
    assert.deepEqual(w.link.sealed.map((d) => d.length), [50, 1000, 900]);
    assert.deepEqual(w.udp.map((s) => [s.ip, s.data.length]), [[PEER.ip, 4], [BEACON.ip, 5]]);

    // Reprobes every 15 s; the first one answered moves everything back.
    w.runUntil(t0 + 18_200_000);
    w.answer();
    assert.equal(w.transport.carrier, 'udp');
    assert.equal(w.socket.route, 'udp');
    assert.equal(w.link.closes, 1);
    w.udp.length = 0;
    w.socket.send(relay(50), BEACON.ip, BEACON.port);
    assert.equal(w.udp.length, 1, 'relay frames on UDP again');
  });

  it('auto, back on udp: a punch request for every relayed peer (the beacon refused punches while we were a channel node)', () => {
    const peers = new Map([
      [9, { nodeId: 9, isUp: true, isRelayed: true, lastRecvUs: 0 }],
      [10, { nodeId: 10, isUp: true, isRelayed: false, lastRecvUs: 0 }],
    ]);
    const w = setup('auto', peers);
    const t0 = w.clock.nowUs();
    w.nat.start();
    w.nat.discoverEndpoint();
    w.runUntil(t0 + 3_100_000);
    assert.equal(w.transport.carrier, 'wss');
    w.runUntil(t0 + 18_200_000);
    w.udp.length = 0;
    w.answer();
    assert.equal(w.transport.carrier, 'udp');
    const punches = w.udp.filter((s) => s.data[0] === BEACON_PUNCH_REQUEST && s.ip === BEACON.ip);
    assert.equal(punches.length, 1, 'one punch request: the relayed peer, not the direct one');
    assert.equal(Buffer.from(punches[0]!.data).readUInt32BE(5), 9);
  });

  it('auto, UDP answering: stays on udp, the link never opens', () => {
    const w = setup('auto');
    w.nat.start();
    w.nat.discoverEndpoint();
    w.answer();
    w.runUntil(w.clock.nowUs() + 20_000_000);
    assert.equal(w.link.opens, 0);
    assert.equal(w.socket.route, 'udp');
  });

  it('tcp: the link opens at start and not one datagram goes to UDP', () => {
    const w = setup('tcp');
    w.nat.start();
    w.nat.discoverEndpoint();
    assert.equal(w.link.opens, 1);
    assert.equal(w.socket.route, 'link-only');
    w.socket.send(relay(60), BEACON.ip, BEACON.port);
    assert.deepEqual(w.udp, [], 'tcp: not even before the link registers');
    w.link.isRegistered = true;
    assert.ok(w.link.discovers >= 1, 'registration discovers over the link');
    w.runUntil(w.clock.nowUs() + 60_000_000);
    w.socket.send(Uint8Array.of(0x50, 0x49, 0x4c, 0x50), PEER.ip, PEER.port);
    const b = new PacketBatch(4, 4096);
    b.push(relay(100), ipv4ToU32(BEACON.ip), BEACON.port);
    b.push(Uint8Array.of(1, 2, 3), ipv4ToU32(PEER.ip), PEER.port);
    w.socket.sendBatch(b);
    assert.deepEqual(w.udp, [], 'no UDP at all (discovers, punches, direct frames)');
    assert.deepEqual(w.link.sealed.map((d) => d.length), [60, 100]);
    assert.equal(w.socket.stats.udpSuppressed >= 2, true);
  });
});
