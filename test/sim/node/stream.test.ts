// Streams and datagrams between whole nodes over a lossy, reordering, corrupting link. Corrupted frames
// reach the receiving node's socket and its real AEAD (there is no sacrificial connection here): the stream
// must still arrive byte-exact, so every one of them was dropped by the node.
import test from 'node:test';
import assert from 'node:assert/strict';
import { collect, nodesOrSkip, openStream, payload, trust } from './helpers.js';

const MB = 1024 * 1024;

test('sim stream: 2 MB byte-exact over a lossy link that corrupts and reorders; corrupted frames die in the AEAD', async (t) => {
  const s = await nodesOrSkip(t, 'stream', { a: { nat: 'full-cone' }, b: { nat: 'full-cone' } });
  if (!s) return;
  const { w, n } = s;
  const a = n.a!;
  const b = n.b!;
  await trust(w, a, b);
  w.net.setLink(a.host.publicIp, b.host.publicIp, {
    latencyUs: 15_000,
    lossPct: 1,
    corruptPct: 1,
    reorderPct: 2,
    reorderUs: 5_000,
    rateBytesPerSec: 4 * MB,
    queueUs: 60_000,
  });
  const { out, in: inbound } = await openStream(w, a, b, 1000);
  const got = collect(inbound);
  const data = payload(2 * MB, w.seed);
  out.end(Buffer.from(data));
  await w.expect(() => got.isEnded || got.error !== null, 60_000, '2 MB and FIN');
  assert.equal(got.error, null);
  assert.equal(got.bytes, data.length, `${w.tag()}`);
  assert.ok(got.bytesOut().equals(Buffer.from(data)), `stream differs (${w.tag()})`);
  const corrupted = b.sockets.reduce((k, x) => k + ((x as { corruptReceived?: number }).corruptReceived ?? 0), 0) +
    a.sockets.reduce((k, x) => k + ((x as { corruptReceived?: number }).corruptReceived ?? 0), 0);
  assert.ok(corrupted > 0, `no corrupted frame reached a node (${w.tag()})`);
  assert.ok(w.net.stats.lost > 0, 'the link lost packets');
  assert.equal(await a.pathTo(b), 'direct', 'the transfer crossed the lossy direct link');
  t.diagnostic(`corrupted frames delivered to the nodes: ${corrupted}; lost ${w.net.stats.lost}; reordered ${w.net.stats.reordered}; ${Math.round(w.nowMs)} ms simulated`);
});

test('sim datagrams: both ways between two trusted nodes, on a lossless link all arrive intact', async (t) => {
  const s = await nodesOrSkip(t, 'datagrams', { a: { nat: 'full-cone' }, b: { nat: 'restricted-cone' } });
  if (!s) return;
  const { w, n } = s;
  const a = n.a!;
  const b = n.b!;
  await trust(w, a, b);
  const sa = a.daemon.openDatagramSocket(5000);
  const sb = b.daemon.openDatagramSocket(5001);
  assert.ok(sa.ok && sb.ok);
  const N = 20;
  const atB: string[] = [];
  const atA: string[] = [];
  const pump = async (sock: typeof sa.value, into: string[]) => {
    for (;;) {
      const d = await sock.recv();
      if (!d) return;
      into.push(`${d.fromNodeId}:${d.fromPort}:${Buffer.from(d.data).toString()}`);
    }
  };
  void pump(sb.value, atB);
  void pump(sa.value, atA);
  for (let i = 0; i < N; i++) {
    const r1 = await w.wait(sa.value.send(String(b.nodeId), 5001, Buffer.from(`a${i}`)), 10_000, 'send a→b');
    assert.ok(r1.ok, r1.ok ? '' : r1.error.message);
    const r2 = await w.wait(sb.value.send(String(a.nodeId), 5000, Buffer.from(`b${i}`)), 10_000, 'send b→a');
    assert.ok(r2.ok, r2.ok ? '' : r2.error.message);
    await w.run(5);
  }
  await w.expect(() => atA.length === N && atB.length === N, 5_000, 'all datagrams');
  assert.deepEqual(atB, Array.from({ length: N }, (_, i) => `${a.nodeId}:5000:a${i}`));
  assert.deepEqual(atA, Array.from({ length: N }, (_, i) => `${b.nodeId}:5001:b${i}`));
  sa.value.close();
  sb.value.close();
});
