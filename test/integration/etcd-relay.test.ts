// Issue 16, relay across replicas: one etcd member, two pilot-rendezvous replicas sharing it (one beacon
// secret), daemon a with --registry/--beacon of replica 0, daemon b of replica 1, both --relay-only. Each
// beacon knows only its own daemon; a relay frame for the other goes to the other replica's beacon (0x08,
// address from `b/<replica>` in etcd). They trust each other and echo a stream byte-exact. Then daemon c with
// the registry of replica 1 but the beacon of replica 0: replica 1's beacon finds c's beacon through `bn/<id>`
// (which beacon observed it), not its registry session, and b reaches c too.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync, rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, exited, readBytes, startRendezvous, type Rendezvous } from './harness.js';
import { EtcdCluster, hasEtcd } from './etcd-cluster.js';

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

test('etcd: two --relay-only daemons on different replicas relay through both beacons, byte-exact', { skip: hasEtcd ? false : 'no /usr/bin/etcd', timeout: 180_000 }, async () => {
  const etcd = await EtcdCluster.start(1);
  const secretDir = mkdtempSync(join(tmpdir(), 'pilot-etcd-relay-'));
  const secretFile = join(secretDir, 'beacon.secret');
  writeFileSync(secretFile, randomBytes(32), { mode: 0o600 });
  const replicas: Rendezvous[] = [];
  let c: Cluster | null = null;
  try {
    const store = etcd.storeUrl(`/relay-${randomBytes(4).toString('hex')}`);
    for (let i = 0; i < 2; i++) replicas.push(await startRendezvous({ store, extraArgs: ['--beacon-secret-file', secretFile] }));
    assert.notEqual(replicas[0]!.beacon, replicas[1]!.beacon);
    c = await Cluster.start('etcdrelay', [], { external: { registry: replicas[0]!.registry, beacon: replicas[0]!.beacon } });
    for (const [i, name] of ['a', 'b'].entries()) {
      c.registry = replicas[i]!.registry;
      c.beacon = replicas[i]!.beacon;
      await c.startDaemon(name, ['--relay-only']);
    }
    assert.equal((await c.ok('a', ['info'])).registry_active, replicas[0]!.registry);
    assert.equal((await c.ok('b', ['info'])).registry_active, replicas[1]!.registry);
    await c.trust('a', 'b', 'across replicas');

    // Echo (port 7) a → b over the relay: 1 MiB out, the same bytes back.
    const ca = await c.client('a');
    const e = await ca.dial(String(c.node('b').nodeId), 7, { timeoutMs: 20_000 });
    assert.ok(e.ok, !e.ok ? e.error.message : '');
    e.value.on('error', () => {});
    const payload = randomBytes(1024 * 1024);
    const t0 = performance.now();
    const back = readBytes(e.value, payload.length, 60_000);
    e.value.write(payload);
    const got = await back;
    console.log(`# 1 MiB echoed across two replicas' beacons in ${Math.round(performance.now() - t0)} ms`);
    assert.equal(got.length, payload.length);
    assert.equal(sha256(got), sha256(payload));
    e.value.end();
    const peers = await c.ok('a', ['peers']);
    assert.equal(peers.peers.find((p: any) => p.node_id === c!.node('b').nodeId)?.path, 'relay');
    // And the other way: a ping b → a.
    assert.ok(await c.ok('b', ['ping', 'a', '--count', '2', '--interval', '100ms']));

    // c: registry of replica 1, beacon of replica 0. b (beacon 1) → c goes to beacon 0 via bn/<c>.
    c.registry = replicas[1]!.registry;
    c.beacon = replicas[0]!.beacon;
    await c.startDaemon('c', ['--relay-only']);
    await c.trust('b', 'c', 'registry and beacon on different replicas');
    const e2 = await (await c.client('b')).dial(String(c.node('c').nodeId), 7, { timeoutMs: 20_000 });
    assert.ok(e2.ok, !e2.ok ? e2.error.message : '');
    e2.value.on('error', () => {});
    const p2 = randomBytes(256 * 1024);
    const back2 = readBytes(e2.value, p2.length, 60_000);
    e2.value.write(p2);
    assert.equal(sha256(await back2), sha256(p2));
    e2.value.end();
  } finally {
    await c?.close();
    for (const r of replicas) {
      r.child.kill('SIGKILL');
      await exited(r.child);
    }
    await etcd.stop();
    rmSync(secretDir, { recursive: true, force: true });
  }
});
