// The simulated network and rendezvous on their own (no Daemon): NAT mapping and filtering, link effects,
// cuts, SimDatapath batches, the in-memory registry connection and the beacon on simulated UDP.
import test from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../../src/core/clock.js';
import { Rng } from '../../../src/core/rng.js';
import { VirtualTimers } from '../../../src/node/driver.js';
import { RegistryClient } from '../../../src/node/registry-client.js';
import { generateIdentity, sign } from '../../../src/crypto/index.js';
import { decodeBeaconMessage, encodeBeaconMessage } from '../../../src/wire/beacon-message.js';
import type { RecvBatch } from '../../../src/datapath/types.js';
import { SimNet, type SimDatapath } from './net.js';
import { world } from './world.js';

function net(link = {}) {
  const clock = new ManualClock(0);
  const timers = new VirtualTimers(clock);
  const n = new SimNet({ rng: new Rng(7), clock, timers, link });
  const run = (ms: number) => {
    const end = clock.nowUs() + ms * 1000;
    while (timers.step(end));
    if (clock.nowUs() < end) clock.set(end);
  };
  return { clock, timers, net: n, run };
}

function inbox(dp: SimDatapath): Array<{ data: Uint8Array; from: string }> {
  const got: Array<{ data: Uint8Array; from: string }> = [];
  dp.onReceive((b: RecvBatch) => {
    for (let i = 0; i < b.count; i++) got.push({ data: b.payload(i).slice(), from: `${b.ip(i)}:${b.port(i)}` });
  });
  return got;
}

const bytes = (...v: number[]) => new Uint8Array(v);

test('sim net: a port-restricted NAT maps a LAN socket and admits only endpoints it sent to', () => {
  const { net: n, run } = net();
  const server = n.addPublicHost('server');
  const nat = n.addNat('port-restricted-cone');
  const lan = n.addHostBehind(nat, 'lan');
  assert.equal(lan.ip, '192.168.1.2');
  assert.equal(lan.publicIp, '198.18.1.1');
  const s = server.bind(7000);
  const c = lan.bind(4000);
  const t = server.bind(7001);
  assert.ok(s.ok && c.ok && t.ok);
  const atServer = inbox(s.value);
  const atClient = inbox(c.value);
  // Unsolicited: filtered.
  t.value.send(bytes(9), '198.18.1.1', 4000);
  run(100);
  assert.equal(atClient.length, 0);
  c.value.send(bytes(1, 2, 3), server.ip, 7000);
  run(100);
  assert.equal(atServer.length, 1);
  assert.equal(atServer[0]!.from, '198.18.1.1:4000', 'cone NATs keep the local port when free');
  s.value.send(bytes(4), '198.18.1.1', 4000);
  t.value.send(bytes(5), '198.18.1.1', 4000); // same IP, another port: still filtered
  run(100);
  assert.deepEqual(atClient.map((m) => [...m.data]), [[4]]);
  assert.ok(n.stats.filtered >= 2);
});

test('sim net: a symmetric(random) NAT gives each destination its own public port', () => {
  const { net: n, run } = net();
  const a = n.addPublicHost('a');
  const b = n.addPublicHost('b');
  const lan = n.addHost('lan', 'symmetric-random');
  const sa = a.bind(1);
  const sb = b.bind(1);
  const c = lan.bind(4000);
  assert.ok(sa.ok && sb.ok && c.ok);
  const ga = inbox(sa.value);
  const gb = inbox(sb.value);
  c.value.send(bytes(1), a.ip, 1);
  c.value.send(bytes(1), b.ip, 1);
  run(100);
  assert.notEqual(ga[0]!.from, gb[0]!.from);
});

test('sim net: loss, corruption and reordering come from the seed; a cut drops both directions until undone', () => {
  const { net: n, run } = net({ lossPct: 10, corruptPct: 10, reorderPct: 20, reorderUs: 5000 });
  const a = n.addPublicHost('a');
  const b = n.addPublicHost('b');
  const sa = a.bind(1);
  const sb = b.bind(1);
  assert.ok(sa.ok && sb.ok);
  const got = inbox(sb.value);
  for (let i = 0; i < 1000; i++) sa.value.send(bytes(i & 255, i >> 8), b.ip, 1);
  run(1000);
  assert.ok(n.stats.lost > 50 && n.stats.lost < 150, `lost ${n.stats.lost}`);
  assert.ok(n.stats.corrupted > 50, `corrupted ${n.stats.corrupted}`);
  assert.equal(got.length, 1000 - n.stats.lost);
  const order = got.map((m) => m.data[0]! | (m.data[1]! << 8));
  assert.ok(order.some((v, i) => i > 0 && v < order[i - 1]!), 'some packets overtook others');
  const undo = n.cutBetween(a.ip, b.ip);
  sa.value.send(bytes(1), b.ip, 1);
  sb.value.send(bytes(1), a.ip, 1);
  run(100);
  assert.equal(n.stats.cut, 2);
  undo();
  const before = got.length;
  for (let i = 0; i < 20; i++) sa.value.send(bytes(1), b.ip, 1);
  run(100);
  assert.ok(got.length > before);
});

test('sim net: a link rate spaces packets out and tail-drops beyond its queue', () => {
  const { net: n, run, clock } = net({ latencyUs: 1000, rateBytesPerSec: 1_000_000, queueUs: 10_000 });
  const a = n.addPublicHost('a');
  const b = n.addPublicHost('b');
  const sa = a.bind(1);
  const sb = b.bind(1);
  assert.ok(sa.ok && sb.ok);
  const times: number[] = [];
  sb.value.onReceive((batch) => {
    for (let i = 0; i < batch.count; i++) times.push(clock.nowUs());
  });
  for (let i = 0; i < 100; i++) sa.value.send(new Uint8Array(972), b.ip, 1); // 1000 B on the wire = 1 ms each
  run(1000);
  assert.ok(n.stats.queueDropped > 80, `dropped ${n.stats.queueDropped}`);
  assert.ok(times.length >= 10 && times.length <= 12, `delivered ${times.length}`);
  assert.ok(times[times.length - 1]! - times[0]! >= 9000);
});

test('sim rendezvous: a real RegistryClient registers over the in-memory stream; the beacon answers discover over simulated UDP', async () => {
  const w = await world('rendezvous');
  try {
    const host = w.net.addHost('n1', 'full-cone');
    const id = generateIdentity();
    const client = new RegistryClient({
      registryAddr: w.rendezvous.registryAddr,
      sign: (m) => sign(id, m),
      nowMs: () => w.wallMs(),
      connect: (h, p) => w.rendezvous.connect(host, h, p),
    });
    assert.equal((await w.wait(client.connect(), 5_000, 'connect')).ok, true);
    const r = await w.wait(client.register(`${host.ip}:4000`, id.publicKey), 5_000, 'register');
    assert.ok(r.ok, r.ok ? '' : r.error.message);
    assert.ok(r.value.nodeId > 0);
    assert.ok(r.value.beaconToken, 'a signed registration gets a beacon token');
    const sock = host.bind(4000);
    assert.ok(sock.ok);
    const got = inbox(sock.value);
    // An unauthenticated discover of a token holder is refused (no reply: no reflection) …
    const bare = encodeBeaconMessage({ kind: 'discover', nodeId: r.value.nodeId });
    assert.ok(bare.ok);
    sock.value.send(bare.value, '198.18.0.10', 9001);
    await w.run(200);
    assert.equal(got.length, 0);
    assert.equal(w.rendezvous.beacon.stats.authFailed, 1);
    await w.wait(client.close(), 5_000, 'close');
  } finally {
    await w.close();
  }
});

test('sim rendezvous: the beacon reports the NAT-mapped source of a legacy (unsigned) node', async () => {
  const w = await world('beacon-legacy');
  try {
    const host = w.net.addHost('n1', 'port-restricted-cone');
    const id = generateIdentity();
    const client = new RegistryClient({
      registryAddr: w.rendezvous.registryAddr,
      sign: (m) => sign(id, m),
      nowMs: () => w.wallMs(),
      freshSignatures: 'never',
      connect: (h, p) => w.rendezvous.connect(host, h, p),
    });
    const r = await w.wait(client.register(`${host.ip}:4000`, id.publicKey), 5_000, 'register');
    assert.ok(r.ok, r.ok ? '' : r.error.message);
    const sock = host.bind(4000);
    assert.ok(sock.ok);
    const got = inbox(sock.value);
    const m = encodeBeaconMessage({ kind: 'discover', nodeId: r.value.nodeId });
    assert.ok(m.ok);
    sock.value.send(m.value, '198.18.0.10', 9001);
    sock.value.send(m.value, '198.18.0.11', 9001);
    await w.run(200);
    assert.equal(got.length, 2);
    for (const g of got) {
      const d = decodeBeaconMessage(g.data);
      assert.ok(d.ok && d.value.kind === 'discover_reply');
      assert.deepEqual({ ip: d.value.ip, port: d.value.port }, { ip: '198.18.1.1', port: 4000 });
    }
    assert.equal(w.rendezvous.beacon.observedEndpoint(r.value.nodeId), '198.18.1.1:4000');
    await w.wait(client.close(), 5_000, 'close');
  } finally {
    await w.close();
  }
});
