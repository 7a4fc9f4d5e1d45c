// Relay across rendezvous replicas (issue 16): the 0x08 replica relay codec, and two BeaconServers on
// 127.0.0.1 forwarding to each other through an injected directory lookup.
import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { silentLogger } from '../../../src/core/logger.js';
import { BeaconServer, type ReplicaRelayOptions } from '../../../src/registry/beacon.js';
import { EtcdStore } from '../../../src/registry/etcd-store.js';
import { EtcdCluster, hasEtcd } from '../../integration/etcd-cluster.js';
import {
  decodeBeaconMessage,
  encodeBeaconMessage,
  encodeReplicaRelay,
  replicaRelayKey,
  REPLICA_RELAY_HEADER_BYTES,
  verifyReplicaRelay,
} from '../../../src/wire/beacon-message.js';
import { BeaconPeer } from './beacon-peer.js';

const SECRET = new Uint8Array(32).fill(7);
const KEY = replicaRelayKey(SECRET);

test('replica relay codec: round trip, MAC checked, tampering and a wrong key refused', () => {
  const payload = Uint8Array.from([1, 2, 3, 4, 5]);
  const counter = Date.now() * 1000;
  const e = encodeReplicaRelay(KEY, { originBeaconId: 0xdeadbeef, senderNodeId: 11, destNodeId: 22, counter, payload });
  assert.ok(e.ok);
  assert.equal(e.value.length, REPLICA_RELAY_HEADER_BYTES + payload.length);
  const d = decodeBeaconMessage(e.value);
  assert.ok(d.ok && d.value.kind === 'replica_relay');
  assert.equal(d.value.originBeaconId, 0xdeadbeef);
  assert.equal(d.value.senderNodeId, 11);
  assert.equal(d.value.destNodeId, 22);
  assert.equal(d.value.counter, counter);
  assert.deepEqual(Uint8Array.from(d.value.payload), payload);
  assert.equal(verifyReplicaRelay(d.value, KEY), true);
  assert.equal(verifyReplicaRelay(d.value, replicaRelayKey(new Uint8Array(32).fill(8))), false);
  for (let i = 1; i < e.value.length; i++) {
    const t = Uint8Array.from(e.value);
    t[i]! ^= 0x01;
    const dt = decodeBeaconMessage(t);
    if (dt.ok && dt.value.kind === 'replica_relay') assert.equal(verifyReplicaRelay(dt.value, KEY), false, `byte ${i} flipped`);
  }
  // Too short for the header: an error, never a throw.
  for (let n = 1; n < REPLICA_RELAY_HEADER_BYTES; n++) assert.equal(decodeBeaconMessage(e.value.subarray(0, n)).ok, false);
  // Bad arguments.
  assert.equal(encodeReplicaRelay(KEY, { originBeaconId: -1, senderNodeId: 1, destNodeId: 2, counter, payload }).ok, false);
  assert.equal(encodeReplicaRelay(KEY, { originBeaconId: 1, senderNodeId: 1, destNodeId: 2, counter: 1.5, payload }).ok, false);
  assert.equal(encodeReplicaRelay(KEY, { originBeaconId: 1, senderNodeId: 1, destNodeId: 2, counter, payload: new Uint8Array(65_500) }).ok, false);
  assert.equal(encodeBeaconMessage(d.value).ok, false);
});

test('replica relay codec: total on hostile input', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 80 }), (tail) => {
      const buf = Uint8Array.from([0x08, ...tail]);
      const d = decodeBeaconMessage(buf);
      if (d.ok && d.value.kind === 'replica_relay') assert.equal(verifyReplicaRelay(d.value, KEY), false);
    }),
    { numRuns: 2000 },
  );
});

async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timeout: ' + what);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function beacon(replicaRelay?: ReplicaRelayOptions): Promise<BeaconServer> {
  const r = await BeaconServer.start({ host: '127.0.0.1', port: 0, logger: silentLogger(), ...(replicaRelay ? { replicaRelay } : {}) });
  assert.ok(r.ok);
  return r.value;
}

test('replica relay: two beacons forward to each other through the directory; forged, replayed and stale frames refused', async () => {
  // The "shared directory": node 1 is held by replica a, node 2 by replica b.
  const holder = new Map<number, 'a' | 'b'>([
    [1, 'a'],
    [2, 'b'],
  ]);
  const addr: Record<'a' | 'b', number> = { a: 0, b: 0 };
  const via = (self: 'a' | 'b'): ReplicaRelayOptions => ({
    key: KEY,
    peerBeaconFor: (id) => {
      const h = holder.get(id);
      return h && h !== self ? { address: '127.0.0.1', port: addr[h] } : null;
    },
  });
  const a = await beacon(via('a'));
  const b = await beacon(via('b'));
  const plain = await beacon(); // no replica relay configured
  addr.a = a.address().port;
  addr.b = b.address().port;
  const p1 = await BeaconPeer.open(5000);
  const p2 = await BeaconPeer.open(5000);
  const evil = await BeaconPeer.open(5000);
  try {
    p1.send({ kind: 'discover', nodeId: 1 }, addr.a);
    p2.send({ kind: 'discover', nodeId: 2 }, addr.b);
    await p1.next('discover_reply');
    await p2.next('discover_reply');

    // 1 → 2: beacon a does not know 2, the directory says b holds it.
    const frame = Uint8Array.from({ length: 1200 }, (_, i) => (i * 31) & 0xff);
    p1.send({ kind: 'relay', senderNodeId: 1, destNodeId: 2, payload: frame }, addr.a);
    assert.deepEqual(await p2.next('relay_deliver'), { kind: 'relay_deliver', senderNodeId: 1, payload: frame });
    assert.equal(a.stats.replicaForwarded, 1);
    assert.equal(b.stats.replicaDelivered, 1);
    // 2 → 1, the other way.
    p2.send({ kind: 'relay', senderNodeId: 2, destNodeId: 1, payload: Uint8Array.from([9, 8, 7]) }, addr.b);
    assert.deepEqual(await p1.next('relay_deliver'), { kind: 'relay_deliver', senderNodeId: 2, payload: Uint8Array.from([9, 8, 7]) });
    // Many in a row, all delivered in order-insensitive fashion (the replay window accepts each counter once).
    for (let i = 0; i < 50; i++) p1.send({ kind: 'relay', senderNodeId: 1, destNodeId: 2, payload: Uint8Array.from([i]) }, addr.a);
    await until(() => b.stats.replicaDelivered === 51, 'fifty forwarded frames delivered');

    // Forged: a wrong key. Refused and counted; nothing delivered.
    const now = Date.now() * 1000;
    const forged = encodeReplicaRelay(replicaRelayKey(new Uint8Array(32).fill(1)), { originBeaconId: 5, senderNodeId: 1, destNodeId: 2, counter: now, payload: frame });
    assert.ok(forged.ok);
    evil.sendRaw(forged.value, addr.b);
    // Unauthenticated: a right-looking frame with a zero MAC.
    const bare = Uint8Array.from(forged.value);
    bare.fill(0, 21, REPLICA_RELAY_HEADER_BYTES);
    evil.sendRaw(bare, addr.b);
    await until(() => b.stats.replicaRefused === 2, 'forged frames counted');
    // To a beacon without replica relay: refused too.
    const good = encodeReplicaRelay(KEY, { originBeaconId: 5, senderNodeId: 1, destNodeId: 2, counter: now, payload: Uint8Array.from([42]) });
    assert.ok(good.ok);
    evil.sendRaw(good.value, plain.address().port);
    await until(() => plain.stats.replicaRefused === 1, 'refused without replica relay');

    // A valid frame is delivered once; its replay is refused.
    p2.inbox.length = 0;
    evil.sendRaw(good.value, addr.b);
    assert.deepEqual(await p2.next('relay_deliver'), { kind: 'relay_deliver', senderNodeId: 1, payload: Uint8Array.from([42]) });
    evil.sendRaw(good.value, addr.b);
    await until(() => b.stats.replicaReplayed === 1, 'replay counted');
    // An older counter inside the window is accepted once (UDP reorders); far from our clock is refused.
    const older = encodeReplicaRelay(KEY, { originBeaconId: 5, senderNodeId: 1, destNodeId: 2, counter: now - 10, payload: Uint8Array.from([43]) });
    const stale = encodeReplicaRelay(KEY, { originBeaconId: 6, senderNodeId: 1, destNodeId: 2, counter: now - 3_600_000_000, payload: Uint8Array.from([44]) });
    assert.ok(older.ok && stale.ok);
    evil.sendRaw(older.value, addr.b);
    assert.deepEqual(await p2.next('relay_deliver'), { kind: 'relay_deliver', senderNodeId: 1, payload: Uint8Array.from([43]) });
    evil.sendRaw(stale.value, addr.b);
    await until(() => b.stats.replicaReplayed === 2, 'stale counter counted');

    // A replica relay for a node the receiving beacon has not observed is dropped, never forwarded back.
    holder.set(3, 'a'); // a stale directory: a thinks b holds 3, b thinks a holds it
    const loop = encodeReplicaRelay(KEY, { originBeaconId: 5, senderNodeId: 1, destNodeId: 3, counter: now + 100, payload: Uint8Array.from([1]) });
    assert.ok(loop.ok);
    const forwardedBefore = b.stats.replicaForwarded;
    const droppedBefore = b.stats.relayDropped;
    evil.sendRaw(loop.value, addr.b);
    await until(() => b.stats.relayDropped === droppedBefore + 1, 'unknown destination dropped');
    assert.equal(b.stats.replicaForwarded, forwardedBefore);

    // A destination nobody holds: dropped at a, nothing forwarded.
    const aForwarded = a.stats.replicaForwarded;
    p1.send({ kind: 'relay', senderNodeId: 1, destNodeId: 99, payload: frame }, addr.a);
    await until(() => a.stats.relayDropped >= 1, 'unknown destination dropped at a');
    assert.equal(a.stats.replicaForwarded, aForwarded);
    // Only the observed endpoint of the sender may relay: a spoofed 0x05 at a is not forwarded.
    evil.send({ kind: 'relay', senderNodeId: 1, destNodeId: 2, payload: frame }, addr.a);
    await until(() => a.stats.relayDropped >= 2, 'spoofed relay dropped');
    assert.equal(a.stats.replicaForwarded, aForwarded);
  } finally {
    p1.close();
    p2.close();
    evil.close();
    await Promise.all([a.close(), b.close(), plain.close()]);
  }
});

test('etcd store: a replica\'s beacon address, which replica holds a node and whose beacon observed it, seen by another replica; gone with its lease', { skip: hasEtcd ? false : 'no /usr/bin/etcd', timeout: 60_000 }, async () => {
  const cluster = await EtcdCluster.start(1);
  const prefix = `/rr-${Date.now()}/`;
  const open = async (replicaId: string) => {
    const s = new EtcdStore({ endpoints: cluster.endpoints, prefix, replicaId, logger: silentLogger() });
    const r = await s.load();
    assert.ok(r.ok, !r.ok ? r.error.message : '');
    return s;
  };
  const one = await open('r1');
  const two = await open('r2');
  try {
    assert.equal(two.beaconAddressOf('r1'), null);
    assert.ok((await one.advertiseBeacon('127.0.0.1:9101')).ok);
    assert.equal(one.beaconAddressOf('r1'), '127.0.0.1:9101');
    one.touch(42);
    await until(() => two.beaconAddressOf('r1') === '127.0.0.1:9101' && two.holderOf(42) === 'r1', 'r2 sees r1\'s beacon and node 42', 10_000);
    assert.equal(two.holderOf(43), null);
    // The beacon of r2 observes node 42 (its registry session stays on r1): bn/42 says r2, on both.
    assert.equal(two.beaconHolderOf(42), null);
    two.observedAtBeacon(42);
    two.observedAtBeacon(42);
    await until(() => one.beaconHolderOf(42) === 'r2' && two.beaconHolderOf(42) === 'r2', 'bn/42 = r2 on both', 10_000);
    // …then r1's beacon: the last observer wins.
    one.observedAtBeacon(42);
    await until(() => one.beaconHolderOf(42) === 'r1' && two.beaconHolderOf(42) === 'r1', 'bn/42 = r1 on both', 10_000);
    // r1 closes (its lease revoked): its beacon address and liveness keys go.
    await one.close();
    await until(() => two.beaconAddressOf('r1') === null && two.holderOf(42) === null && two.beaconHolderOf(42) === null, 'r1\'s keys gone', 10_000);
  } finally {
    await one.close();
    await two.close();
    await cluster.stop();
  }
});
