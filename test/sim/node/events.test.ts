// The node's event stream (src/node/events.ts) in simulated time: trust events on both sides of a handshake,
// peer.connected when the tunnel comes up, path.changed direct → relay when the direct path is cut and back
// when it is restored, peer.disconnected on untrust — the same code the webhooks post, observed at Daemon.events.
import test from 'node:test';
import assert from 'node:assert/strict';
import type { NodeEvent } from '../../../src/node/events.js';
import { bothOn, nodesOrSkip, openStream, payload, trust } from './helpers.js';
import type { SimNode } from './world.js';

function record(n: SimNode): NodeEvent[] {
  const got: NodeEvent[] = [];
  n.daemon.events.on((e) => got.push(e));
  return got;
}

const brief = (es: NodeEvent[]): string[] =>
  es.map((e) => (e.type === 'path.changed' ? `${e.type}:${e.data.from}>${e.data.to}` : 'by' in e.data ? `${e.type}:${e.data.by}` : e.type));

test('sim events: trust, peer.connected, path.changed both ways, peer.disconnected', async (t) => {
  const s = await nodesOrSkip(t, 'events', { a: { nat: 'full-cone' }, b: { nat: 'port-restricted-cone' } });
  if (!s) return;
  const { w, n } = s;
  const a = n.a!;
  const b = n.b!;
  const ea = record(a);
  const eb = record(b);
  await trust(w, a, b);
  assert.ok(brief(eb).includes('trust.request_received'), brief(eb).join(' '));
  const req = eb.find((e) => e.type === 'trust.request_received');
  assert.equal(req?.type === 'trust.request_received' && req.data.node_id, a.nodeId);
  assert.ok(brief(eb).includes('trust.approved:local'), brief(eb).join(' '));
  await w.expect(() => brief(ea).includes('trust.approved:peer'), 5_000, 'a hears the approval');

  const { out } = await openStream(w, a, b, 1000);
  await w.expect(() => bothOn(a, b, 'direct'), 20_000, 'both direct');
  await w.run(1_500); // the tracker's tick
  assert.ok(brief(ea).includes('peer.connected'), brief(ea).join(' '));
  const restore = w.net.cutBetween(a.host.publicIp, b.host.publicIp);
  const chunk = Buffer.from(payload(4096, 1));
  const keepBusy = async (until: () => Promise<boolean>, what: string): Promise<void> => {
    const end = w.nowMs + 30_000;
    while (!(await until())) {
      if (w.nowMs > end) throw new Error(`timed out waiting for ${what} (${w.tag()}); a: ${brief(ea).join(' ')}`);
      out.write(chunk);
      await w.run(100);
    }
  };
  await keepBusy(async () => brief(ea).includes('path.changed:direct>relay'), 'path.changed direct → relay');
  restore();
  await keepBusy(async () => brief(ea).includes('path.changed:relay>direct'), 'path.changed relay → direct');
  const changes = brief(ea).filter((x) => x.startsWith('path.changed'));
  assert.equal(changes[0], 'path.changed:direct>relay');
  assert.equal(changes[changes.length - 1], 'path.changed:relay>direct');

  const u = await w.wait(a.daemon.untrust(b.nodeId), 5_000, 'untrust');
  assert.ok(u.ok);
  assert.ok(brief(ea).includes('trust.revoked:local'), brief(ea).join(' '));
  assert.ok(brief(ea).includes('peer.disconnected'), brief(ea).join(' '));
  await w.expect(() => brief(eb).includes('trust.revoked:peer'), 10_000, 'b hears the revocation');
  const connected = ea.filter((e) => e.type === 'peer.connected' && e.data.node_id === b.nodeId);
  assert.ok(connected.length >= 1);
  out.destroy();
});
