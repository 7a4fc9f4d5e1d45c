// A node talking to itself (issue 14): the `self` suite (src/node/streams/stream-suites.ts, loopbackStreams) in
// simulated time — streams both ways byte-exact, several at once to one port (the demux key names the end),
// FIN on both sides, and a datagram to an own port. No tunnel, no trust.
import test from 'node:test';
import assert from 'node:assert/strict';
import { collect, nodesOrSkip, openStream, payload } from './helpers.js';

test('sim loopback: streams to oneself, three at once to one port, byte-exact both ways; a datagram to an own port', async (t) => {
  const s = await nodesOrSkip(t, 'loopback', { a: { nat: 'full-cone' } });
  if (!s) return;
  const { w, n } = s;
  const a = n.a!;
  const l = a.daemon.listen(1000);
  assert.ok(l.ok);
  const pairs = [];
  for (let i = 0; i < 3; i++) {
    const accepted = l.value.accept();
    const d = await w.wait(a.daemon.dial(String(a.nodeId), 1000, { timeoutMs: 10_000 }), 15_000, `dial self #${i}`);
    assert.ok(d.ok, d.ok ? '' : `${d.error.code}: ${d.error.message}`);
    const inbound = await w.wait(accepted, 5_000, 'accept');
    assert.ok(inbound);
    pairs.push({ out: d.value, in: inbound });
  }
  const sent = pairs.map((_, i) => Buffer.from(payload(300_000 + i * 1000, w.seed + i)));
  const back = pairs.map((_, i) => Buffer.from(payload(50_000 + i, w.seed + 10 + i)));
  const atServer = pairs.map((p) => collect(p.in));
  const atClient = pairs.map((p) => collect(p.out));
  pairs.forEach((p, i) => {
    p.out.end(sent[i]);
    p.in.end(back[i]);
  });
  await w.expect(() => atServer.every((c) => c.isEnded) && atClient.every((c) => c.isEnded), 30_000, 'all loopback streams ended');
  pairs.forEach((_, i) => {
    assert.ok(atServer[i]!.bytesOut().equals(sent[i]!), `stream ${i} to the listener differs`);
    assert.ok(atClient[i]!.bytesOut().equals(back[i]!), `stream ${i} back differs`);
  });
  assert.equal(pairs[0]!.in.remoteNodeId, a.nodeId);

  const again = await openStream(w, a, a, 1001);
  assert.equal(again.out.remotePort, 1001);
  again.out.destroy();

  const rx = a.daemon.openDatagramSocket(5000);
  const tx = a.daemon.openDatagramSocket(5001);
  assert.ok(rx.ok && tx.ok);
  const got = rx.value.recv();
  const sentD = await w.wait(tx.value.send(String(a.nodeId), 5000, Buffer.from('to myself')), 5_000, 'datagram send');
  assert.ok(sentD.ok, sentD.ok ? '' : sentD.error.message);
  const d = await w.wait(got, 5_000, 'datagram to self');
  assert.ok(d);
  assert.equal(Buffer.from(d.data).toString(), 'to myself');
  assert.equal(d.fromNodeId, a.nodeId);
  assert.equal(d.fromPort, 5001);
  rx.value.close();
  tx.value.close();
});
