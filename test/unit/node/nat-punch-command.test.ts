// The daemon's side of the authenticated beacon (issue 10), through the path driver (src/node/paths/) to the
// component that decides, the path engine (src/nat/paths.ts), in virtual time.
// Attack (fails on the code before): a forged 8-byte punch_command from any source made the daemon send 27
// PILP packets to an address of the attacker's choice. Now a punch command counts only from our beacon's
// address; once we hold a beacon token, only MACed with it, fresh, and naming a peer we asked to punch with
// or that may reach us. Our discover and punch request carry our MAC once we hold a token.
import test from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../../src/core/logger.js';
import type { Datapath } from '../../../src/datapath/index.js';
import { ManualClock } from '../../../src/core/clock.js';
import { Rng } from '../../../src/core/rng.js';
import { err } from '../../../src/core/result.js';
import { Driver, VirtualTimers } from '../../../src/node/driver.js';
import { PathDriver } from '../../../src/node/paths/path-driver.js';
import { MainSocket } from '../../../src/node/paths/main-socket.js';
import type { NoiseSuite } from '../../../src/node/peers/noise-suite.js';
import {
  BEACON_TOKEN_BYTES,
  decodeBeaconMessage,
  encodeAuthenticatedBeaconMessage,
  encodeBeaconMessage,
  verifyBeaconAuth,
} from '../../../src/wire/beacon-message.js';

const BEACON = { ip: '127.0.0.1', port: 9001 };
const ME = 10;
const FRIEND = 11; // trusted
const STRANGER = 12;
const ASKED = 13; // not trusted, but we asked the beacon for a punch with it
const TOKEN = new Uint8Array(BEACON_TOKEN_BYTES).fill(9);
const PUNCH_PACKETS = 27; // 3 rounds × 9 ports

function setup(token: Uint8Array | null) {
  const sent: { data: Uint8Array; ip: string; port: number }[] = [];
  const datapath = {
    kind: 'dgram',
    localAddress: { ip: '127.0.0.1', port: 4000 },
    send(data: Uint8Array, ip: string, port: number) {
      sent.push({ data: Uint8Array.from(data), ip, port });
      return 1;
    },
  } as unknown as Datapath;
  const clock = new ManualClock(1_000_000);
  const timers = new VirtualTimers(clock);
  const driver = new Driver(clock, timers);
  const nat = new PathDriver({
    logger: silentLogger(),
    driver,
    rng: new Rng(1),
    wall: { nowMs: () => Date.now() },
    openExtraSocket: async () => err('internal', 'no extra sockets in this test'),
    relayOnly: false,
    beaconAddr: BEACON,
    beacon2Addr: null,
    beaconEndpoint: BEACON,
    socket: new MainSocket(datapath),
    tunnels: () => ({ handlePunchFrom: () => {}, flushTx: () => {}, peers: new Map() }) as unknown as NoiseSuite,
    nodeId: () => ME,
    listenHost: '127.0.0.1',
    busyPeers: () => [],
    beaconToken: () => token,
    legacyRelayed: () => {},
    acceptsPunchFrom: (id) => id === FRIEND,
  });
  let counter = Date.now() * 1000;
  return {
    nat,
    sent,
    advance(us: number) {
      clock.set(clock.nowUs() + us);
    },
    /** A punch command as our beacon MACs it for us (or with another key). */
    macedCommand(peerNodeId: number, port: number, key = TOKEN, ctr = ++counter) {
      const e = encodeAuthenticatedBeaconMessage({ kind: 'punch_command', ip: '203.0.113.7', port, peerNodeId }, key, ctr);
      assert.ok(e.ok);
      return e.value;
    },
    bareCommand(port: number) {
      const e = encodeBeaconMessage({ kind: 'punch_command', ip: '203.0.113.7', port });
      assert.ok(e.ok);
      return e.value;
    },
    deliver(bytes: Uint8Array, from = BEACON) {
      nat.handleBeacon(bytes, from.ip, from.port, clock.nowUs());
    },
    /** Packets sent to the punch target 203.0.113.7 after the punch rounds ran (160 ms of virtual time). */
    async punchesTo(port: number): Promise<number> {
      const until = clock.nowUs() + 160_000;
      while (timers.step(until));
      if (clock.nowUs() < until) clock.set(until);
      return sent.filter((s) => s.ip === '203.0.113.7' && s.port >= port && s.port <= port + 8).length;
    },
  };
}

test('attack: a forged punch_command from a stranger\'s socket makes the daemon send nothing (with or without a token)', async () => {
  for (const token of [TOKEN, null]) {
    const s = setup(token);
    s.deliver(s.bareCommand(5000), { ip: '198.51.100.66', port: 4444 });
    s.deliver(s.macedCommand(FRIEND, 5000), { ip: '127.0.0.1', port: 9002 }); // right MAC, wrong source port
    assert.equal(await s.punchesTo(5000), 0);
    assert.equal(s.nat.stats.punchCommandsRefused, 2);
  }
});

test('attack: with a beacon token, bare, wrongly MACed, replayed or stranger-naming punch commands are ignored', async () => {
  const s = setup(TOKEN);
  s.deliver(s.bareCommand(5000)); // spoofed beacon address, original format
  s.deliver(s.macedCommand(FRIEND, 5000, new Uint8Array(BEACON_TOKEN_BYTES).fill(1))); // another node's token
  s.deliver(s.macedCommand(STRANGER, 5000)); // genuine, but for a peer we neither asked for nor trust
  assert.equal(await s.punchesTo(5000), 0);
  assert.equal(s.nat.stats.punchCommandsRefused, 3);

  const genuine = s.macedCommand(FRIEND, 6000); // we are the target of a trusted peer's punch
  s.deliver(genuine);
  assert.equal(await s.punchesTo(6000), PUNCH_PACKETS);
  s.deliver(genuine); // replayed
  s.deliver(s.macedCommand(FRIEND, 6000, TOKEN, 1)); // older counter
  assert.equal(await s.punchesTo(6000), PUNCH_PACKETS, 'no second punch');
});

test('nat: a punch we asked for is accepted for that peer (MACed request), until it goes stale', async () => {
  const s = setup(TOKEN);
  s.nat.requestPunch(ASKED);
  const req = s.sent.find((p) => p.port === BEACON.port);
  assert.ok(req, 'punch request sent to the beacon');
  const d = decodeBeaconMessage(req.data);
  assert.ok(d.ok && d.value.kind === 'punch_request' && d.value.fromNodeId === ME && d.value.toNodeId === ASKED);
  assert.ok(d.value.auth && verifyBeaconAuth(d.value.auth, TOKEN), 'the request carries our MAC');
  s.deliver(s.macedCommand(ASKED, 7000));
  assert.equal(await s.punchesTo(7000), PUNCH_PACKETS);
  s.advance(31_000_000);
  s.deliver(s.macedCommand(ASKED, 7100));
  assert.equal(await s.punchesTo(7100), 0, 'a punch asked for 31 s ago no longer counts');
});

test('nat: discover is MACed with a fresh counter each time once we hold a token, bare without one', () => {
  const s = setup(TOKEN);
  s.nat.discoverEndpoint();
  s.nat.discoverEndpoint();
  const ds = s.sent.map((p) => decodeBeaconMessage(p.data)).filter((d) => d.ok && d.value.kind === 'discover');
  assert.equal(ds.length, 2);
  const [a, b] = ds.map((d) => (d.ok && d.value.kind === 'discover' ? d.value.auth : undefined));
  assert.ok(a && b && verifyBeaconAuth(a, TOKEN) && verifyBeaconAuth(b, TOKEN));
  assert.ok(b.counter > a.counter);

  const bare = setup(null);
  bare.nat.discoverEndpoint();
  const expected = encodeBeaconMessage({ kind: 'discover', nodeId: ME });
  assert.ok(expected.ok);
  assert.deepEqual(bare.sent.map((p) => Array.from(p.data)), [Array.from(expected.value)]);
});

test('nat: against an original registry (no token) a bare punch command from the beacon address still works, rate capped', async () => {
  const s = setup(null);
  s.deliver(s.bareCommand(8000));
  assert.equal(await s.punchesTo(8000), PUNCH_PACKETS);
  // A flood of commands (e.g. spoofing the beacon's address) is capped per second.
  for (let i = 0; i < 100; i++) s.deliver(s.bareCommand(9000));
  const n = await s.punchesTo(9000);
  assert.ok(n > 0 && n <= 20 * PUNCH_PACKETS, `${n} packets`);
});
