// Both halves of the authenticated beacon (issue 10) together on loopback: the daemon's path driver MACs its
// discover and punch request with its beacon token, the real BeaconServer (with a fake registry authority)
// verifies them, and each side accepts the MACed punch command naming the other — so two trusted token
// holders still punch, and a stranger's request (or a node without the right token) gets nowhere.
import test from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { silentLogger } from '../../../src/core/logger.js';
import type { Datapath } from '../../../src/datapath/index.js';
import { monotonicClock, realTimers, realWallClock } from '../../../src/core/clock.js';
import { Rng } from '../../../src/core/rng.js';
import { err } from '../../../src/core/result.js';
import { Driver } from '../../../src/node/driver.js';
import { PathDriver } from '../../../src/node/paths/path-driver.js';
import { MainSocket } from '../../../src/node/paths/main-socket.js';
import type { NoiseSuite } from '../../../src/node/peers/noise-suite.js';
import { BeaconServer } from '../../../src/registry/beacon.js';
import type { BeaconAuthority, BeaconNodeAuth } from '../../../src/registry/beacon-authority.js';
import { BEACON_TOKEN_BYTES, isBeaconMessage } from '../../../src/wire/beacon-message.js';
import { isPilp } from '../../../src/wire/legacy-frame.js';

const A = 21;
const B = 22;
const C = 23; // registered, trusted by nobody

const tokens = new Map([A, B, C].map((id) => [id, new Uint8Array(BEACON_TOKEN_BYTES).fill(id)]));
const authority: BeaconAuthority = {
  nodeAuth: (id): BeaconNodeAuth | null => (tokens.has(id) ? { token: tokens.get(id)!, isLegacy: false } : null),
  mayPunch: (from, to) => (from === A && to === B) || (from === B && to === A),
};

async function node(id: number, beaconPort: number, trusts: number[]) {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  const pilpFrom = new Set<number>();
  const datapath = {
    kind: 'dgram',
    localAddress: { ip: '127.0.0.1', port: sock.address().port },
    send(data: Uint8Array, ip: string, port: number) {
      sock.send(data, port, ip);
      return 1;
    },
  } as unknown as Datapath;
  const beacon = { ip: '127.0.0.1', port: beaconPort };
  const driver = new Driver(monotonicClock, realTimers);
  const nat = new PathDriver({
    logger: silentLogger(),
    driver,
    rng: new Rng(id),
    wall: realWallClock,
    openExtraSocket: async () => err('internal', 'no extra sockets in this test'),
    relayOnly: false,
    beaconAddr: beacon,
    beacon2Addr: null,
    beaconEndpoint: beacon,
    socket: new MainSocket(datapath),
    tunnels: () => ({ handlePunchFrom: () => {}, flushTx: () => {}, peers: new Map() }) as unknown as NoiseSuite,
    nodeId: () => id,
    listenHost: '127.0.0.1',
    busyPeers: () => [],
    beaconToken: () => tokens.get(id)!,
    legacyRelayed: () => {},
    acceptsPunchFrom: (peer) => trusts.includes(peer),
  });
  sock.on('message', (m, rinfo) => {
    const p = Uint8Array.from(m);
    if (isBeaconMessage(p)) nat.handleBeacon(p, rinfo.address, rinfo.port, driver.nowUs());
    else if (isPilp(p)) pilpFrom.add(rinfo.port);
  });
  return { nat, sock, pilpFrom, port: sock.address().port, close: () => (nat.close(), sock.close()) };
}

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('beacon + daemon: trusted token holders discover and punch each other; a stranger\'s punch request gets nothing', async () => {
  const started = await BeaconServer.start({ host: '127.0.0.1', port: 0, logger: silentLogger(), authority });
  assert.ok(started.ok);
  const beacon = started.value;
  const port = beacon.address().port;
  const a = await node(A, port, [B]);
  const b = await node(B, port, [A]);
  const c = await node(C, port, []);
  try {
    for (const n of [a, b, c]) n.nat.discoverEndpoint();
    await settle(150);
    assert.equal(beacon.observedEndpoint(A), `127.0.0.1:${a.port}`);
    assert.equal(beacon.observedEndpoint(B), `127.0.0.1:${b.port}`);
    assert.equal(a.nat.publicEndpoint, `127.0.0.1:${a.port}`, 'the beacon answered our MACed discover');
    assert.equal(beacon.stats.authFailed + beacon.stats.replayed, 0);

    a.nat.requestPunch(B);
    await settle(250);
    assert.ok(b.pilpFrom.has(a.port), 'A punched towards B');
    assert.ok(a.pilpFrom.has(b.port), 'B punched towards A');
    assert.equal(a.nat.stats.punchCommandsRefused + b.nat.stats.punchCommandsRefused, 0);

    c.nat.requestPunch(A);
    await settle(250);
    assert.equal(beacon.stats.punchRefused, 1);
    assert.equal(c.pilpFrom.size, 0);
    assert.ok(!a.pilpFrom.has(c.port) && !c.pilpFrom.has(a.port), 'no punch between A and the stranger');
  } finally {
    for (const n of [a, b, c]) n.close();
    await beacon.close();
  }
});
