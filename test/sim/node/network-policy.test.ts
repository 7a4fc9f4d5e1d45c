// Network policies in simulated time (issue 15): a policy an owner signs into the chain reaches every member
// within 1 s (the membership push); the receiving daemon enforces it — a SYN to a denied port is refused and
// audited (policy.denied) even from a sender that does not check the policy itself, and a denied datagram is
// dropped there; a sender that holds the policy gets policy_denied naming the rule before anything leaves.
import test from 'node:test';
import assert from 'node:assert/strict';
import { nodesOrSkip } from './helpers.js';
import type { SimNode, SimWorld } from './world.js';

const POLICY = '{"default":"allow","rules":[{"action":"deny","ports":[1001],"from":"*","to":"*"}]}';
const MEMBERS = 20;

async function net(w: SimWorld, x: SimNode, params: Record<string, unknown>): Promise<any> {
  const r = await w.wait(x.daemon.network(params as never), 10_000, `network ${String(params.op)}`);
  assert.ok(r.ok, r.ok ? '' : `${r.error.code}: ${r.error.message} (${w.tag()})`);
  return r.value;
}

test(`sim policy: ${MEMBERS} members get a policy change within 1 s; the receiver refuses and audits a denied port`, async (t) => {
  const specs: Record<string, { nat: 'full-cone' }> = {};
  for (let i = 0; i < MEMBERS; i++) specs[`m${i}`] = { nat: 'full-cone' };
  const s = await nodesOrSkip(t, 'policy', specs);
  if (!s) return;
  const { w, n } = s;
  const nodes = Object.values(n);
  const owner = nodes[0]!;
  const created = await net(w, owner, { op: 'create', name: 'lab', join_rule: 'open' });
  for (const x of nodes.slice(1)) await net(w, x, { op: 'join', name: 'lab' });
  await w.expect(() => nodes.every((x) => nodes.every((y) => x === y || x.daemon.networks.isCoMember(y.nodeId))), 10_000, 'every member sees every other');

  const t0 = w.nowMs;
  const set = await net(w, owner, { op: 'policy_set', name: 'lab', policy: POLICY });
  assert.equal(set.network_id, created.network_id);
  assert.equal(set.rules, 1);
  await w.expect(() => nodes.every((x) => { const g = x.daemon.networks.getPolicy('lab'); return g.ok && g.value.sha256 === set.sha256; }), 5_000, 'every member holds the new policy');
  const took = w.nowMs - t0;
  t.diagnostic(`policy reached ${MEMBERS} members in ${took} ms simulated`);
  assert.ok(took < 1_000, `the policy took ${took} ms simulated to reach all ${MEMBERS} members`);

  // A member may not set it.
  const bad = await w.wait(nodes[1]!.daemon.network({ op: 'policy_set', name: 'lab', policy: '{"default":"deny","rules":[]}' } as never), 10_000, 'member policy_set');
  assert.equal(!bad.ok && bad.error.code, 'permission_denied');

  const a = nodes[1]!;
  const b = nodes[2]!;
  const denials: { node_id: number; port: number; rule: string; network: string }[] = [];
  a.daemon.events.on((e) => {
    if (e.type === 'policy.denied') denials.push(e.data);
  });
  const l7 = a.daemon.listen(7);
  const l1001 = a.daemon.listen(1001);
  assert.ok(l7.ok && l1001.ok);
  let accepted1001 = 0;
  void (async () => {
    for (;;) {
      const x = await l1001.value.accept();
      if (x === null) return;
      accepted1001++;
    }
  })();
  void (async () => {
    for (;;) {
      const x = await l7.value.accept();
      if (x === null) return;
    }
  })();

  // The receiver decides: its RST names the rule, the dialer gets policy_denied with it, and the receiver
  // audits the refusal (policy.denied) — every time, whatever the dialer's copy of the policy says.
  const d1 = await w.wait(b.daemon.dial(String(a.nodeId), 1001, { timeoutMs: 3_000 }), 20_000, 'dial 1001');
  assert.equal(d1.ok, false);
  assert.equal(!d1.ok && d1.error.code, 'policy_denied');
  assert.match(!d1.ok ? d1.error.message : '', /network lab's policy denies port 1001: rule 1 /);
  const det = (!d1.ok ? d1.error.detail : {}) as Record<string, unknown>;
  assert.equal(typeof det.network_id, 'number');
  assert.deepEqual({ ...det, network_id: 0 }, { network: 'lab', network_id: 0, port: 1001, rule: '{"action":"deny","ports":[1001],"from":"*","to":"*"}', rule_index: 0, line: 1 });
  assert.equal(accepted1001, 0);
  await w.expect(() => denials.length >= 1, 5_000, 'a policy.denied event at the receiver');
  assert.deepEqual(denials[0], { node_id: b.nodeId, port: 1001, network: 'lab', rule: '{"action":"deny","ports":[1001],"from":"*","to":"*"}', count: 1 });
  // Port 7 is allowed.
  const d7 = await w.wait(b.daemon.dial(String(a.nodeId), 7, { timeoutMs: 3_000 }), 20_000, 'dial 7');
  assert.ok(d7.ok, d7.ok ? '' : `${d7.error.code}: ${d7.error.message}`);
  d7.value.destroy();

  // A sender whose copy of the policy is stale (or that ignores it): the same refusal, decided by the receiver.
  (b.daemon.networks as unknown as { checkPolicy: () => null }).checkPolicy = () => null;
  const seen = denials.length;
  const d2 = await w.wait(b.daemon.dial(String(a.nodeId), 1001, { timeoutMs: 3_000 }), 20_000, 'dial 1001, stale sender');
  assert.equal(d2.ok, false, 'the receiver accepted a denied port');
  assert.equal(!d2.ok && d2.error.code, 'policy_denied');
  assert.equal(accepted1001, 0);
  await w.expect(() => denials.length > seen, 5_000, 'the receiver audited it again');

  // Datagrams: the receiver drops a denied one (and audits it) and tells the sender, whose next sends to that
  // port fail with policy_denied; an allowed one arrives.
  const ra = a.daemon.openDatagramSocket(1001);
  const rOk = a.daemon.openDatagramSocket(2000);
  const sb = b.daemon.openDatagramSocket(3000);
  assert.ok(ra.ok && rOk.ok && sb.ok);
  const before = denials.length;
  const g1 = await w.wait(sb.value.send(String(a.nodeId), 1001, new Uint8Array([1])), 10_000, 'datagram 1001');
  assert.ok(g1.ok, g1.ok ? '' : g1.error.message);
  await w.expect(() => denials.slice(before).some((d) => d.port === 1001), 5_000, 'the datagram denial audited at the receiver');
  let g2: Awaited<ReturnType<typeof sb.value.send>> | null = null;
  await w.expect(() => {
    void sb.value.send(String(a.nodeId), 1001, new Uint8Array([2])).then((r) => (g2 = r));
    return g2 !== null && !(g2 as { ok: boolean }).ok;
  }, 5_000, 'the sender learns of the refusal');
  assert.equal(g2 && !(g2 as { ok: boolean }).ok && (g2 as unknown as { error: { code: string } }).error.code, 'policy_denied');
  const g3 = await w.wait(sb.value.send(String(a.nodeId), 2000, new Uint8Array([3])), 10_000, 'datagram 2000');
  assert.ok(g3.ok, g3.ok ? '' : g3.error.message);
  const got = await w.wait(rOk.value.recv(5_000), 10_000, 'recv 2000');
  assert.deepEqual(got && [...got.data], [3]);
  const none = await w.wait(ra.value.recv(1_000), 10_000, 'recv 1001');
  assert.equal(none, null, 'a denied datagram was delivered');

  // Clearing the policy reaches the members again; the port opens.
  const cleared = await net(w, owner, { op: 'policy_set', name: 'lab', policy: '' });
  assert.equal(cleared.sha256, null);
  await w.expect(() => { const g = a.daemon.networks.getPolicy('lab'); return g.ok && g.value.policy === null; }, 5_000, 'a sees the policy cleared');
  const d3 = await w.wait(b.daemon.dial(String(a.nodeId), 1001, { timeoutMs: 3_000 }), 20_000, 'dial 1001 after clear');
  assert.ok(d3.ok, d3.ok ? '' : `${d3.error.code}: ${d3.error.message}`);
  d3.value.destroy();

  // A signed policy that does not parse (pilotctl refuses to sign one; a foreign signer could) denies
  // everything between members — fail closed — until an owner sets a valid one.
  type Book = { byName(n: string): unknown; adminChange(h: unknown, op: string, subject: number, f: { policy: string }): Promise<{ ok: boolean }> };
  const book = owner.daemon.networks as unknown as Book;
  const signed = await w.wait(book.adminChange(book.byName('lab'), 'policy', owner.nodeId, { policy: '{"default": "allow", "rules": [' }), 10_000, 'sign a broken policy');
  assert.ok(signed.ok, 'the chain takes any text an admin signs');
  await w.expect(() => { const g = a.daemon.networks.getPolicy('lab'); return g.ok && g.value.policy !== null; }, 5_000, 'a holds the broken policy');
  const d4 = await w.wait(b.daemon.dial(String(a.nodeId), 7, { timeoutMs: 3_000 }), 20_000, 'dial 7 under a broken policy');
  assert.equal(!d4.ok && d4.error.code, 'policy_denied', 'an unparseable policy denies everything');
  assert.match(!d4.ok ? d4.error.message : '', /does not parse/);
});
