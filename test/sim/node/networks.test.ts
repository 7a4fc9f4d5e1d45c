// Networks in simulated time (issue 15): membership is trust at the receiving daemon — a verified co-member
// opens a tunnel without a handshake; a kicked member and a non-member are refused there, by the receiver's own
// chain, even when the registry (wrongly) lets them find it.
import test from 'node:test';
import assert from 'node:assert/strict';
import { nodesOrSkip } from './helpers.js';
import type { SimNode, SimWorld } from './world.js';

async function net(w: SimWorld, x: SimNode, params: Record<string, unknown>): Promise<any> {
  const r = await w.wait(x.daemon.network(params as never), 10_000, `network ${String(params.op)}`);
  assert.ok(r.ok, r.ok ? '' : `${r.error.code}: ${r.error.message} (${w.tag()})`);
  return r.value;
}

async function dial(w: SimWorld, from: SimNode, to: SimNode, port: number) {
  return w.wait(from.daemon.dial(String(to.nodeId), port, { timeoutMs: 3_000 }), 20_000, 'dial');
}

test('sim networks: members reach each other without a handshake; the receiver refuses a kicked member and a non-member', async (t) => {
  const s = await nodesOrSkip(t, 'nets', { a: { nat: 'full-cone', captureLog: true }, b: { nat: 'full-cone' }, c: { nat: 'full-cone' } });
  if (!s) return;
  const { w, n } = s;
  const a = n.a!;
  const b = n.b!;
  const c = n.c!;
  const seen: string[] = [];
  a.daemon.events.on((e) => {
    if (e.type === 'network.changed') seen.push(`${e.data.op}:${e.data.node_id}`);
  });
  await net(w, a, { op: 'create', name: 'lab', join_rule: 'invite' });
  await net(w, a, { op: 'invite', name: 'lab', peer: String(b.nodeId) });
  const joined = await net(w, b, { op: 'accept', name: 'lab' });
  assert.equal(joined.role, 'member');
  await w.expect(() => a.daemon.networks.isCoMember(b.nodeId), 5_000, 'a sees b join (push)');
  const l = a.daemon.listen(80);
  assert.ok(l.ok);
  let accepted = 0;
  const acceptLoop = async (): Promise<void> => {
    for (;;) {
      const x = await l.value.accept();
      if (x === null) return;
      accepted++;
    }
  };
  void acceptLoop();
  const d1 = await dial(w, b, a, 80);
  assert.ok(d1.ok, d1.ok ? '' : `member could not reach the owner: ${d1.error.message} (${w.tag()})`);
  d1.value.destroy();
  await w.expect(() => accepted === 1, 5_000, 'a accepted the member');
  const tr = await a.daemon.trusted();
  assert.ok(tr.ok && tr.value.trusted.length === 0, 'no handshake trust was involved');

  // Kick b. The registry is then told a trusts b (a lying or stale registry), so b can still find a: only a's
  // own chain stands between them.
  const t0 = w.nowMs;
  await net(w, a, { op: 'kick', name: 'lab', peer: String(b.nodeId) });
  await w.expect(() => !b.daemon.networks.isCoMember(a.nodeId), 5_000, 'b learns it was kicked (push)');
  assert.ok(w.nowMs - t0 < 1_000, `kick took ${w.nowMs - t0} ms simulated to reach b`);
  const rep = await w.wait(a.daemon.registry.reportTrust(b.nodeId), 5_000, 'report_trust b');
  assert.ok(rep.ok);
  const rep2 = await w.wait(a.daemon.registry.reportTrust(c.nodeId), 5_000, 'report_trust c');
  assert.ok(rep2.ok);
  for (const x of [b, c]) {
    const d = await dial(w, x, a, 80);
    assert.equal(d.ok, false, `node ${x.name} got a stream (${w.tag()})`);
    const refused = a.logs.filter((r) => r.msg === 'refused tunnel from untrusted node' && r.node_id === x.nodeId);
    assert.ok(refused.length > 0, `a logged no refusal of ${x.name}: ${JSON.stringify(a.logs.map((r) => r.msg).slice(-20))}`);
  }
  assert.equal(accepted, 1);
  // Each verified change is a node event (webhooks, audit): the owner saw the invite, b's join and the kick.
  assert.deepEqual(seen, ['create:' + a.nodeId, 'invite:' + b.nodeId, 'join:' + b.nodeId, 'remove:' + b.nodeId]);
});
