// The transport choice (src/nat/transport-choice.ts) on virtual time: a tiny world steps the chooser's deadlines
// and answers its UDP probes (or not), as the path driver would.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { COMPAT_TIMING, TransportChoice, type TransportAction, type TransportChoiceOptions } from '../../../src/nat/index.js';

const S = 1_000_000;

/** Steps the chooser: probes are answered after `rttUs` while `isUdpUp(now)`. */
class World {
  now = 0;
  readonly c: TransportChoice;
  readonly log: Array<{ at: number; a: TransportAction }> = [];
  private answers: number[] = [];
  constructor(
    opts: Partial<TransportChoiceOptions>,
    private readonly isUdpUp: (now: number) => boolean,
    private readonly rttUs = 20_000,
  ) {
    this.c = new TransportChoice({ mode: 'auto', hasCompat: true, isRegistryProxied: false, ...opts });
  }
  drain(): void {
    for (let a = this.c.pollAction(); a; a = this.c.pollAction()) {
      this.log.push({ at: this.now, a });
      if (a.kind === 'probe_udp' && this.isUdpUp(this.now)) this.answers.push(this.now + this.rttUs);
    }
  }
  /** Run until `untilUs`, delivering answers and firing deadlines in time order. */
  run(untilUs: number): void {
    this.drain();
    for (;;) {
      const dl = this.c.pollTimeout();
      const ans = this.answers.length ? Math.min(...this.answers) : null;
      const next = [dl, ans].filter((x): x is number => x !== null).reduce((a, b) => Math.min(a, b), Infinity);
      if (next > untilUs) break;
      this.now = Math.max(this.now, next);
      if (ans !== null && ans === next) {
        this.answers.splice(this.answers.indexOf(ans), 1);
        this.c.handleUdpAnswer(this.now);
      } else this.c.handleTimeout(this.now);
      this.drain();
    }
    this.now = untilUs;
  }
  kinds(): string[] {
    return this.log.map((x) => (x.a.kind === 'carrier' ? `carrier:${x.a.carrier}` : x.a.kind));
  }
  at(kind: string): number[] {
    return this.log.filter((x) => (x.a.kind === 'carrier' ? `carrier:${x.a.carrier}` : x.a.kind) === kind).map((x) => x.at);
  }
}

describe('transport choice', () => {
  it('udp mode: never leaves UDP, never probes, registry plain', () => {
    const w = new World({ mode: 'udp' }, () => false);
    w.c.start(0);
    w.c.handleRegistered(0);
    w.run(120 * S);
    assert.deepEqual(w.kinds(), []);
    assert.equal(w.c.carrier, 'udp');
    assert.deepEqual(w.c.registryRoutes, ['plain']);
    w.c.handleRegistryConnected('tls');
    assert.deepEqual(w.c.registryRoutes, ['plain']);
  });

  it('tcp mode: the link opens at start, wss for good, registry over TLS, no UDP probe ever', () => {
    const w = new World({ mode: 'tcp' }, () => true);
    w.c.start(0);
    w.c.handleRegistered(1000);
    w.run(120 * S);
    assert.deepEqual(w.kinds(), ['open_link', 'carrier:wss']);
    assert.equal(w.c.carrier, 'wss');
    assert.equal(w.c.registryRoute, 'tls');
    assert.match(w.c.reason, /--transport tcp/);
    w.c.handleUdpAnswer(w.now); // a stray answer changes nothing
    w.drain();
    assert.equal(w.c.carrier, 'wss');
  });

  it('auto with UDP answering: probes once after registration, stays udp, no link', () => {
    const w = new World({}, () => true);
    w.c.start(0);
    w.run(500_000);
    assert.deepEqual(w.kinds(), [], 'nothing before registration');
    w.c.handleRegistered(w.now);
    w.run(10 * S);
    assert.deepEqual(w.kinds(), ['probe_udp']);
    assert.equal(w.c.carrier, 'udp');
    assert.match(w.c.reason, /answers over UDP/);
  });

  it('auto with UDP blocked: probes ~1 s apart, then the link after exactly 3 s', () => {
    const w = new World({}, () => false);
    w.c.start(0);
    w.c.handleRegistered(0);
    w.run(3.5 * S);
    assert.deepEqual(w.at('probe_udp'), [0, 1 * S, 2 * S]);
    assert.deepEqual(w.at('open_link'), [COMPAT_TIMING.udpAnswerTimeoutUs]);
    assert.equal(w.c.carrier, 'wss');
    assert.match(w.c.reason, /no UDP answer from the beacon within 3 s/);
  });

  it('auto on wss: reprobes every 15 s, re-asserts the link after an unanswered UDP discover, and goes back when UDP answers', () => {
    let udpFrom = Infinity;
    const w = new World({}, (now) => now >= udpFrom);
    w.c.start(0);
    w.c.handleRegistered(0);
    w.run(40 * S);
    const t0 = COMPAT_TIMING.udpAnswerTimeoutUs;
    assert.deepEqual(w.at('probe_udp').slice(3), [t0 + 15 * S, t0 + 30 * S]);
    assert.deepEqual(w.at('link_discover'), [t0 + 16 * S, t0 + 31 * S]);
    // An engine discover over UDP counts as well (noteUdpDiscoverSent).
    w.c.noteUdpDiscoverSent(w.now);
    w.run(w.now + 1.5 * S);
    assert.equal(w.at('link_discover').length, 3);
    udpFrom = w.now;
    w.run(70 * S);
    assert.equal(w.c.carrier, 'udp');
    assert.match(w.c.reason, /answers again/);
    const back = w.at('carrier:udp')[0]!;
    assert.ok(back <= udpFrom + 15 * S + 20_000, `back to udp within one reprobe interval (${back - udpFrom} µs)`);
    assert.deepEqual(w.at('close_link'), [back]);
    // Once on udp again with answers flowing, no more link work.
    const before = w.log.length;
    w.run(200 * S);
    assert.ok(w.log.slice(before).every((x) => x.a.kind === 'probe_udp'), 'only silence re-probes on udp');
  });

  it('auto on udp: a beacon silent for 30 s is probed again, and the node moves to wss', () => {
    let udpUntil = 10 * S;
    const w = new World({}, (now) => now < udpUntil);
    w.c.start(0);
    w.c.handleRegistered(0);
    w.run(10 * S);
    assert.equal(w.c.carrier, 'udp');
    udpUntil = 0;
    w.run(40 * S);
    const lastAnswer = 20_000;
    const probes = w.at('probe_udp');
    assert.deepEqual(probes.slice(1), [lastAnswer + 30 * S, lastAnswer + 31 * S, lastAnswer + 32 * S]);
    assert.deepEqual(w.at('open_link'), [lastAnswer + 33 * S]);
    assert.equal(w.c.carrier, 'wss');
  });

  it('auto without a compat transport stays on UDP whatever happens', () => {
    const w = new World({ hasCompat: false }, () => false);
    w.c.start(0);
    w.c.handleRegistered(0);
    w.run(120 * S);
    assert.deepEqual(w.kinds(), []);
    assert.equal(w.c.carrier, 'udp');
    assert.match(w.c.reason, /no compat transport/);
  });

  it('registry routes in auto: both per attempt, plain first (TLS first behind a proxy); the one that connects is preferred; tcp and no-compat one route', () => {
    const c = new TransportChoice({ mode: 'auto', hasCompat: true, isRegistryProxied: false });
    assert.deepEqual(c.registryRoutes, ['plain', 'tls']);
    c.handleRegistryConnected('tls');
    assert.deepEqual(c.registryRoutes, ['tls', 'plain']);
    assert.equal(c.stats.registrySwitches, 1);
    c.handleRegistryConnected('tls');
    assert.equal(c.stats.registrySwitches, 1);
    c.handleRegistryConnected('plain');
    assert.deepEqual(c.registryRoutes, ['plain', 'tls']);
    assert.deepEqual(new TransportChoice({ mode: 'auto', hasCompat: true, isRegistryProxied: true }).registryRoutes, ['tls', 'plain']);
    assert.deepEqual(new TransportChoice({ mode: 'auto', hasCompat: false, isRegistryProxied: true }).registryRoutes, ['plain']);
    assert.deepEqual(new TransportChoice({ mode: 'tcp', hasCompat: true, isRegistryProxied: false }).registryRoutes, ['tls']);
    assert.ok(COMPAT_TIMING.registryFallbackDelayUs > 0);
  });
});
