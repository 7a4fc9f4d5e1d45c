// The seed is the whole story: the same seed replays the same run (packets lost, corrupted and reordered,
// the time the transfer ends, the paths), so a failure printed with its seed can be replayed with PILOT_SEED.
import test from 'node:test';
import assert from 'node:assert/strict';
import { seedFromEnv } from '../../../src/core/rng.js';
import { collect, nodesOrSkip, openStream, payload, trust } from './helpers.js';

async function trace(t: test.TestContext, seed: number, wallEpochMs: number): Promise<string | null> {
  const s = await nodesOrSkip(t, `replay-${seed}`, { a: { nat: 'full-cone' }, b: { nat: 'port-restricted-cone' } }, { seed, wallEpochMs });
  if (!s) return null;
  const { w, n } = s;
  await trust(w, n.a!, n.b!);
  w.net.setLink(n.a!.host.publicIp, n.b!.host.publicIp, { lossPct: 2, corruptPct: 1, reorderPct: 2, reorderUs: 4_000, rateBytesPerSec: 2_000_000 });
  const { out, in: inbound } = await openStream(w, n.a!, n.b!, 1000);
  const got = collect(inbound);
  out.end(Buffer.from(payload(256 * 1024, seed)));
  await w.expect(() => got.isEnded, 30_000, 'FIN');
  const finMs = w.nowMs;
  await w.run(3_000);
  return JSON.stringify({ finMs, stats: w.net.stats, flows: [...w.net.flows], path: [await n.a!.pathTo(n.b!), await n.b!.pathTo(n.a!)] });
}

test('sim replay: the same seed gives the same run (every node/ timer is on the Driver, all randomness from the seed)', async (t) => {
  const seed = seedFromEnv();
  // One epoch for both runs: the beacon and the registry check signed times against it.
  const epoch = Date.now();
  const first = await trace(t, seed, epoch);
  if (first === null) return;
  const second = await trace(t, seed, epoch);
  assert.equal(second, first, `seed ${seed} did not replay`);
});
