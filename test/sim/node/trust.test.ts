// Trust between whole nodes in simulated time: a handshake over the real registry, approval, mutual trust;
// and the refusal where it happens — the receiving node refuses a tunnel from a node it does not trust,
// even when the registry (wrongly) lets the initiator find it.
import test from 'node:test';
import assert from 'node:assert/strict';
import { isTrusted, nodesOrSkip, trust } from './helpers.js';

test('sim trust: two nodes register, handshake → approve → mutual trust, in simulated time', async (t) => {
  const s = await nodesOrSkip(t, 'trust', { a: { nat: 'full-cone', hostname: 'alpha' }, b: { nat: 'port-restricted-cone', hostname: 'beta' } });
  if (!s) return;
  const { w, n } = s;
  assert.notEqual(n.a!.nodeId, n.b!.nodeId);
  const t0 = w.nowMs;
  await trust(w, n.a!, n.b!);
  assert.ok(await isTrusted(n.a!, n.b!));
  assert.ok(await isTrusted(n.b!, n.a!));
  assert.ok(w.nowMs - t0 < 2_000, `trust took ${w.nowMs - t0} ms simulated (${w.tag()})`);
  // Trust opens the way: a resolves b by hostname and a tunnel comes up.
  const l = n.b!.daemon.listen(77);
  assert.ok(l.ok);
  const d = await w.wait(n.a!.daemon.dial('beta', 77, { timeoutMs: 5_000 }), 10_000, 'dial beta');
  assert.ok(d.ok, d.ok ? '' : `${d.error.code}: ${d.error.message} (${w.tag()})`);
  d.value.destroy();
});

test('sim trust: the receiver refuses an untrusted initiator, even one the registry lets find it', async (t) => {
  const s = await nodesOrSkip(t, 'refuse', { b: { nat: 'full-cone', captureLog: true }, c: { nat: 'full-cone' } });
  if (!s) return;
  const { w, n } = s;
  const b = n.b!;
  const c = n.c!;
  // The registry is told b trusts c (as a lying or stale registry would say); b's own trust store says no.
  const rep = await w.wait(b.daemon.registry.reportTrust(c.nodeId), 5_000, 'report_trust');
  assert.ok(rep.ok, rep.ok ? '' : rep.error.message);
  // c trusts b, so only b's check stands between them.
  const before = b.sockets[0]!.stats().rxPackets;
  const l = b.daemon.listen(80);
  assert.ok(l.ok);
  let accepted = false;
  void l.value.accept().then((x) => (accepted = x !== null));
  const d = await w.wait(c.daemon.dial(String(b.nodeId), 80, { timeoutMs: 3_000 }), 20_000, 'dial');
  assert.equal(d.ok, false, `an untrusted initiator got a stream (${w.tag()})`);
  assert.ok(b.sockets[0]!.stats().rxPackets > before, `c's handshake reached b (${w.tag()})`);
  assert.equal(accepted, false);
  const p = await b.daemon.peers();
  assert.ok(p.ok);
  assert.ok(!p.value.peers.some((x) => x.node_id === c.nodeId && x.path !== 'none'), `b holds a tunnel to c: ${JSON.stringify(p.value.peers)}`);
  assert.equal(await isTrusted(b, c), false);
  // The refusal happened at b, by b's own trust check (not earlier, at the registry or at c).
  const refused = b.logs.filter((r) => r.msg === 'refused tunnel from untrusted node' && r.node_id === c.nodeId);
  assert.ok(refused.length > 0, `b logged no refusal: ${JSON.stringify(b.logs.map((r) => r.msg))}`);
});
