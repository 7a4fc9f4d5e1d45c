// Issue 16, distributed: a three-member etcd cluster and three pilot-rendezvous replicas on 127.0.0.1 (ports
// from the OS, data in temp dirs, everything killed by PID, also on failure); daemons spread over the replicas
// with `--registry a,b,c`. A trust push crosses replicas in ≤ 1 s; then one replica and one etcd member are
// killed mid-run: no registration, hostname or trust is lost, the daemons of the dead replica fail over and keep
// their node ids, and a new handshake across the surviving replicas still works.
import test from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync, rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bound, challenge } from '../../src/wire/registry-frame.js';
import { Cluster, exited, isMutual, startRendezvous, waitFor, type Rendezvous } from './harness.js';
import { EtcdCluster, hasEtcd } from './etcd-cluster.js';
import { RawClient, fresh, newIdentity, registerOurs } from '../unit/registry/helpers.js';

test('etcd: 3 etcd members + 3 rendezvous replicas; cross-replica trust push; a replica and an etcd member die, nothing is lost', { skip: hasEtcd ? false : 'no /usr/bin/etcd', timeout: 240_000 }, async () => {
  const etcd = await EtcdCluster.start(3);
  const secretDir = mkdtempSync(join(tmpdir(), 'pilot-etcd-secret-'));
  const secretFile = join(secretDir, 'beacon.secret');
  writeFileSync(secretFile, randomBytes(32), { mode: 0o600 });
  const replicas: (Rendezvous | null)[] = [];
  const raw: RawClient[] = [];
  let c: Cluster | null = null;
  try {
    const store = etcd.storeUrl(`/it-${randomBytes(4).toString('hex')}`);
    for (let i = 0; i < 3; i++) replicas.push(await startRendezvous({ store, extraArgs: ['--beacon-secret-file', secretFile, '--max-connections-per-ip', '256'] }));
    const reg = replicas.map((r) => r!.registry);
    const port = (i: number) => Number(reg[i]!.slice(reg[i]!.lastIndexOf(':') + 1));

    // The registry protocol itself: a node on replica 0 asks a node on replica 1; the push comes within 1 s.
    const a = newIdentity();
    const b = newIdentity();
    const ca = await RawClient.connect(port(0));
    const cb = await RawClient.connect(port(1));
    raw.push(ca, cb);
    const ida = await registerOurs(ca, a, '127.0.0.1:6001', 'raw-a');
    const idb = await registerOurs(cb, b, '127.0.0.1:6002', 'raw-b');
    assert.equal((await cb.request(fresh(b, { type: 'subscribe_push', node_id: idb }, challenge.subscribePush(idb)))).type, 'subscribe_push_ok');
    let pushMs = Infinity;
    for (let attempt = 0; attempt < 20 && pushMs === Infinity; attempt++) {
      // Replica 0 must know b first (its watch; milliseconds): until then the request is not_found.
      const t0 = performance.now();
      const r = await ca.request(fresh(a, { type: 'request_handshake', from_node_id: ida, to_node_id: idb, justification: 'x' }, bound.requestHandshake(ida, idb, 'x')));
      if (r.type !== 'request_handshake_ok') {
        await new Promise((res) => setTimeout(res, 100));
        continue;
      }
      await cb.push((m) => m.type === 'push_handshake_request' && m.from_node_id === ida, 5_000);
      pushMs = performance.now() - t0;
    }
    console.log(`# cross-replica trust push (registry protocol, replica 0 → replica 1): ${pushMs.toFixed(1)} ms`);
    assert.ok(pushMs <= 1000, `cross-replica push took ${pushMs} ms`);

    // Daemons spread over the replicas; each lists all three, its own first.
    c = await Cluster.start('etcd', [], { external: { registry: reg.join(','), beacon: replicas[0]!.beacon } });
    const names = ['n0', 'n1', 'n2'];
    for (let i = 0; i < 3; i++) {
      c.registry = [0, 1, 2].map((k) => reg[(i + k) % 3]).join(',');
      c.beacon = replicas[i]!.beacon;
      await c.startDaemon(names[i]!);
    }
    const ids = names.map((n) => c!.node(n).nodeId);
    assert.equal(new Set(ids).size, 3, `node ids unique across replicas: ${ids.join(',')}`);
    for (let i = 0; i < 3; i++) assert.equal((await c.ok(names[i]!, ['info'])).registry_active, reg[i]);

    // Daemon-level handshake across replicas (n0 on replica 0 → n1 on replica 1), and n2 ↔ n0.
    const cn1 = await c.client('n1');
    const t0 = performance.now();
    const hs = await (await c.client('n0')).handshake(String(ids[1]), 'across replicas');
    assert.ok(hs.ok, JSON.stringify(hs));
    await waitFor('n1 sees n0\'s request', async () => {
      const p = await cn1.pending();
      return p.ok && p.value.pending.some((x) => x.node_id === ids[0]);
    }, 10_000, 10);
    console.log(`# daemon handshake request visible on the other replica's node after ${(performance.now() - t0).toFixed(0)} ms`);
    assert.ok((await cn1.approve(ids[0]!)).ok);
    const cn0 = await c.client('n0');
    await waitFor('mutual n0↔n1', async () => (await isMutual(cn0, ids[1]!)) && (await isMutual(cn1, ids[0]!)), 15_000);
    await c.trust('n2', 'n0');
    assert.equal((await c.ok('n1', ['find', 'n0'])).node_id, ids[0]);
    const ping = await c.ok('n0', ['ping', 'n1', '--count', '2', '--interval', '100ms']);
    assert.ok(ping, 'n0 reaches n1 before the failure');

    // Mid-run: replica 0 and etcd member 0 die (SIGKILL, by PID).
    const r0 = replicas[0]!;
    r0.child.kill('SIGKILL');
    await exited(r0.child);
    replicas[0] = null;
    await etcd.kill(0);

    // n0 fails over (to replica 1, next in its list) and keeps its node id; its hostname and trust survive.
    await waitFor('n0 on another replica', async () => {
      const i = await c!.json('n0', ['info']);
      return i.data?.registry_connected === true && i.data.registry_active !== reg[0];
    }, 60_000, 200);
    const info0 = await c.ok('n0', ['info']);
    assert.equal(info0.node_id, ids[0], 'same node id after the failover');
    assert.equal(info0.hostname, 'n0');
    for (const [who, target] of [['n1', 'n0'], ['n2', 'n0'], ['n0', 'n1'], ['n0', 'n2'], ['n2', 'n1']] as const) {
      const f = await c.json(who, ['find', target]);
      assert.equal(f.data?.node_id, ids[names.indexOf(target)], `${who} finds ${target} after the failure: ${JSON.stringify(f.error ?? f.data)}`);
    }
    assert.ok(await isMutual(cn0, ids[1]!), 'trust n0→n1 kept');
    assert.ok(await isMutual(cn1, ids[0]!), 'trust n1→n0 kept');
    assert.ok(await c.ok('n0', ['ping', 'n1', '--count', '2', '--interval', '100ms']), 'n0 reaches n1 after the failure');
    // A handshake after the failure, across the surviving replicas (n1 on 1 → n2 on 2), with 2 of 3 etcd members.
    const ms = await c.trust('n1', 'n2');
    console.log(`# handshake n1 (replica 1) → n2 (replica 2) after the failures: mutual ${ms.toFixed(0)} ms after approve`);
    // Every registration is still in the directory, on both surviving replicas.
    const cr = await RawClient.connect(port(2));
    raw.push(cr);
    for (const id of [...ids, ida, idb]) {
      // Private nodes of ours answer identified lookups only (requester b, a fresh signature).
      const l = await cr.request(fresh(b, { type: 'lookup', node_id: id, requester_id: idb }, challenge.lookup(idb, id)));
      assert.equal(l.type, 'lookup_ok', `node ${id} still registered: ${JSON.stringify(l)}`);
    }
  } finally {
    for (const r of raw) r.close();
    await c?.close();
    for (const r of replicas) {
      if (!r) continue;
      r.child.kill('SIGKILL');
      await exited(r.child);
    }
    await etcd.stop();
    rmSync(secretDir, { recursive: true, force: true });
  }
});
