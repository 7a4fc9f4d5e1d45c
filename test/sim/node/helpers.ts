// Steps the node-core simulation tests share: mutual trust through the registry, byte-exact streams, paths.
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import type { PilotStream } from '../../../src/node/api.js';
import { Rng } from '../../../src/core/rng.js';
import { world, type NodeSpec, type SimNode, type SimWorld, type SimWorldOptions } from './world.js';

/**
 * A world with the given nodes, or a skipped test when the Daemon cannot run in it yet (it must take its
 * world from NodeEnv). The world is closed after the test.
 */
export async function nodesOrSkip(
  t: TestContext,
  name: string,
  specs: Record<string, NodeSpec>,
  opts: SimWorldOptions = {},
): Promise<{ w: SimWorld; n: Record<string, SimNode> } | null> {
  const w = await world(name, opts);
  t.after(() => w.close());
  const n: Record<string, SimNode> = {};
  for (const [k, spec] of Object.entries(specs)) {
    const r = await w.addNode(k, spec);
    if (!r.ok && r.error.code === 'not_running') {
      t.skip(r.error.message);
      return null;
    }
    if (!r.ok) throw new Error(`${k}: ${r.error.message} (${w.tag()})`);
    n[k] = r.value;
  }
  await w.expect(() => Object.values(n).every((x) => x.nodeId > 0), 5_000, 'every node registered');
  return { w, n };
}

/** a asks b for trust, b approves: both end with a mutual entry for the other. */
export async function trust(w: SimWorld, a: SimNode, b: SimNode): Promise<void> {
  const h = await w.wait(a.daemon.handshake(String(b.nodeId), `sim: ${a.name} → ${b.name}`), 5_000, 'handshake');
  assert.ok(h.ok, h.ok ? '' : h.error.message);
  assert.equal(h.value.status, 'pending');
  await w.expect(async () => {
    const p = await b.daemon.pending();
    return p.ok && p.value.pending.some((x) => x.node_id === a.nodeId);
  }, 5_000, `${b.name} sees ${a.name}'s request`);
  const ap = await w.wait(b.daemon.approve(a.nodeId), 5_000, 'approve');
  assert.ok(ap.ok, ap.ok ? '' : ap.error.message);
  await w.expect(async () => (await isTrusted(a, b)) && (await isTrusted(b, a)), 5_000, 'mutual trust');
}

export async function isTrusted(x: SimNode, of: SimNode): Promise<boolean> {
  const t = await x.daemon.trusted();
  return t.ok && t.value.trusted.some((e) => e.node_id === of.nodeId && e.mutual);
}

/** `n` seeded pseudo-random bytes. */
export function payload(n: number, seed: number): Uint8Array {
  const rng = new Rng(seed);
  const words = new Uint32Array(Math.ceil(n / 4));
  for (let i = 0; i < words.length; i++) words[i] = rng.nextU32();
  return new Uint8Array(words.buffer, 0, n);
}

/** Everything a stream delivers (until FIN), and whether it failed. */
export function collect(s: PilotStream): { chunks: Buffer[]; bytes: number; isEnded: boolean; error: Error | null; bytesOut(): Buffer } {
  const c = {
    chunks: [] as Buffer[],
    bytes: 0,
    isEnded: false,
    error: null as Error | null,
    bytesOut: () => Buffer.concat(c.chunks),
  };
  s.on('data', (d: Buffer) => {
    c.chunks.push(d);
    c.bytes += d.length;
  });
  s.on('end', () => (c.isEnded = true));
  s.on('error', (e: Error) => (c.error = e));
  return c;
}

/** dial a → b:port and accept on b: both ends. */
export async function openStream(w: SimWorld, a: SimNode, b: SimNode, port: number): Promise<{ out: PilotStream; in: PilotStream }> {
  const l = b.daemon.listen(port);
  assert.ok(l.ok, l.ok ? '' : l.error.message);
  const accepted = l.value.accept();
  const d = await w.wait(a.daemon.dial(String(b.nodeId), port, { timeoutMs: 10_000 }), 15_000, `dial ${a.name} → ${b.name}:${port}`);
  assert.ok(d.ok, d.ok ? '' : `${d.error.code}: ${d.error.message} (${w.tag()})`);
  const s = await w.wait(accepted, 5_000, 'accept');
  assert.ok(s, 'accepted a stream');
  return { out: d.value, in: s };
}

/** Both nodes' path to each other equals `path`. */
export async function bothOn(a: SimNode, b: SimNode, path: 'direct' | 'relay'): Promise<boolean> {
  return (await a.pathTo(b)) === path && (await b.pathTo(a)) === path;
}
