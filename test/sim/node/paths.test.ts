// NAT traversal and path changes between whole nodes: the node's own traversal (driven by the registry and
// the beacon of the simulated rendezvous) against modelled NATs, observed through peers().
import test from 'node:test';
import assert from 'node:assert/strict';
import type { PilotStream } from '../../../src/node/api.js';
import { bothOn, collect, nodesOrSkip, openStream, payload, trust } from './helpers.js';
import type { SimNode, SimWorld } from './world.js';

test('sim traversal: full-cone ↔ port-restricted meet on a direct path', async (t) => {
  const s = await nodesOrSkip(t, 'cone-prc', { a: { nat: 'full-cone' }, b: { nat: 'port-restricted-cone' } });
  if (!s) return;
  const { w, n } = s;
  await trust(w, n.a!, n.b!);
  const { out, in: inbound } = await openStream(w, n.a!, n.b!, 1000);
  await w.expect(() => bothOn(n.a!, n.b!, 'direct'), 20_000, 'both direct');
  // The direct path carries the traffic: packets flow between the two NATs' public addresses.
  const flowBefore = w.net.flow(n.a!.host.publicIp, n.b!.host.publicIp);
  const got = collect(inbound);
  out.end(Buffer.from(payload(64 * 1024, 1)));
  await w.expect(() => got.isEnded, 10_000, 'FIN');
  assert.equal(got.bytes, 64 * 1024);
  assert.ok(w.net.flow(n.a!.host.publicIp, n.b!.host.publicIp) > flowBefore + 10, `the stream did not travel direct (${w.tag()})`);
  const pa = await n.a!.peer(n.b!);
  assert.equal(pa?.endpoint, `${n.b!.host.publicIp}:4000`, 'a sends to b’s NAT mapping');
});

test('sim traversal: symmetric(random) ↔ symmetric(random) stays on the relay, and the relay carries a stream', async (t) => {
  const s = await nodesOrSkip(t, 'sym-sym', { a: { nat: 'symmetric-random' }, b: { nat: 'symmetric-random' } });
  if (!s) return;
  const { w, n } = s;
  await trust(w, n.a!, n.b!);
  const { out, in: inbound } = await openStream(w, n.a!, n.b!, 1000);
  const got = collect(inbound);
  out.end(Buffer.from(payload(256 * 1024, 2)));
  await w.expect(() => got.isEnded, 20_000, 'FIN over the relay');
  assert.equal(got.bytes, 256 * 1024);
  for (let i = 0; i < 15; i++) {
    await w.run(1_000);
    assert.ok(await bothOn(n.a!, n.b!, 'relay'), `left the relay at ${w.tag()}: ${await n.a!.pathTo(n.b!)}/${await n.b!.pathTo(n.a!)}`);
  }
  assert.ok(w.rendezvous.beacon.stats.relayed > 100, `relayed ${w.rendezvous.beacon.stats.relayed}`);
});

/** Write `chunk` every `everyMs` until `stop()` holds (checked each time), then `extra` more chunks. */
async function pace(w: SimWorld, out: PilotStream, chunk: Uint8Array, everyMs: number, stop: () => Promise<boolean>, limitMs: number, what: string, sent: { bytes: number; all: Buffer[] }, extra = 10): Promise<void> {
  const end = w.nowMs + limitMs;
  const send = () => {
    const b = Buffer.from(chunk.map((x, i) => x ^ ((sent.bytes + i) & 255)));
    out.write(b);
    sent.all.push(b);
    sent.bytes += b.length;
  };
  while (!(await stop())) {
    if (w.nowMs > end) throw new Error(`timed out waiting for ${what} (${w.tag()})`);
    send();
    await w.run(everyMs);
  }
  for (let i = 0; i < extra; i++) {
    send();
    await w.run(everyMs);
  }
}

async function paths(a: SimNode, b: SimNode): Promise<string> {
  return `${await a.pathTo(b)}/${await b.pathTo(a)}`;
}

test('sim path change: the direct path is cut → the stream moves to the relay unbroken → restored → back to direct', async (t) => {
  const s = await nodesOrSkip(t, 'path-change', { a: { nat: 'full-cone' }, b: { nat: 'port-restricted-cone' } });
  if (!s) return;
  const { w, n } = s;
  const a = n.a!;
  const b = n.b!;
  await trust(w, a, b);
  const { out, in: inbound } = await openStream(w, a, b, 1000);
  const got = collect(inbound);
  let outError: Error | null = null;
  out.on('error', (e: Error) => (outError = e));
  await w.expect(() => bothOn(a, b, 'direct'), 20_000, 'both direct');
  const chunk = payload(8 * 1024, 3);
  const sent = { bytes: 0, all: [] as Buffer[] };
  const history: string[] = [await paths(a, b)];
  const note = async () => {
    const p = await paths(a, b);
    if (history[history.length - 1] !== p) history.push(p);
  };
  // Direct for a while.
  await pace(w, out, chunk, 50, async () => (await note(), got.bytes >= 200 * 1024), 10_000, 'traffic on the direct path', sent, 0);
  // Cut the path between the two public endpoints (the relay through the beacon keeps working).
  const restore = w.net.cutBetween(a.host.publicIp, b.host.publicIp);
  const cutAt = w.nowMs;
  await pace(w, out, chunk, 50, async () => (await note(), bothOn(a, b, 'relay')), 20_000, 'the relay after the cut', sent);
  t.diagnostic(`on the relay ${Math.round(w.nowMs - cutAt)} ms after the cut`);
  const onRelayAt = got.bytes;
  await pace(w, out, chunk, 50, async () => (await note(), got.bytes >= onRelayAt + 100 * 1024), 20_000, 'traffic over the relay', sent, 0);
  restore();
  const restoredAt = w.nowMs;
  await pace(w, out, chunk, 50, async () => (await note(), bothOn(a, b, 'direct')), 30_000, 'direct again after the restore', sent);
  t.diagnostic(`direct again ${Math.round(w.nowMs - restoredAt)} ms after the restore; paths ${history.join(' → ')}`);
  out.end();
  await w.expect(() => got.isEnded || got.error !== null, 20_000, 'FIN');
  assert.equal(got.error, null, 'the stream was not reset');
  assert.equal(outError, null, 'the sender saw no error');
  assert.equal(got.bytes, sent.bytes);
  assert.ok(got.bytesOut().equals(Buffer.concat(sent.all)), `stream differs (${w.tag()})`);
  assert.ok(history.includes('relay/relay') && history[history.length - 1] === 'direct/direct', `paths ${history.join(' → ')}`);
});

test('sim traversal: three nodes — two behind one NAT meet over their LAN, both reach a third behind another NAT', async (t) => {
  const s = await nodesOrSkip(t, 'lan', { c: { nat: 'full-cone' } });
  if (!s) return;
  const { w, n } = s;
  const home = w.net.addNat('port-restricted-cone');
  const a = await w.node('a', { behind: home });
  const b = await w.node('b', { behind: home });
  await w.expect(() => a.nodeId > 0 && b.nodeId > 0, 5_000, 'registered');
  await trust(w, a, b);
  await trust(w, a, n.c!);
  await trust(w, b, n.c!);
  const ab = await openStream(w, a, b, 1000);
  const ac = await openStream(w, a, n.c!, 1000);
  const bc = await openStream(w, b, n.c!, 1001);
  const got = [collect(ab.in), collect(ac.in), collect(bc.in)];
  const data = payload(128 * 1024, 4);
  for (const x of [ab, ac, bc]) x.out.end(Buffer.from(data));
  await w.expect(() => got.every((g) => g.isEnded), 20_000, 'three transfers');
  for (const g of got) assert.ok(g.bytesOut().equals(Buffer.from(data)));
  await w.expect(() => bothOn(a, b, 'direct'), 10_000, 'a ↔ b direct');
  const pab = await a.peer(b);
  assert.equal(pab?.endpoint, `${b.host.ip}:4000`, `a reaches b at its LAN address, not through the NAT (${w.tag()})`);
  await w.expect(async () => (await bothOn(a, n.c!, 'direct')) && (await bothOn(b, n.c!, 'direct')), 20_000, 'both reach c direct');
});
