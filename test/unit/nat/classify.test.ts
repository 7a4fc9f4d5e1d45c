// NAT classification from simulated discover replies: each model kind, the evidence limits, pilotctl's text.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Rng, seedFromEnv } from '../../../src/core/index.js';
import { classifyNat, type DiscoverObservation, type UdpEndpoint } from '../../../src/nat/index.js';
import { NatModel, type ModelKind } from './sim-world.js';

const B1: UdpEndpoint = { ip: '198.18.100.10', port: 9001 };
const B2: UdpEndpoint = { ip: '198.18.100.11', port: 9001 };
const seed = seedFromEnv();

function observe(kind: ModelKind, sockets: number[], servers: UdpEndpoint[], rng: Rng): { obs: DiscoverObservation[]; localIp: string } {
  const nat = kind === 'none' ? null : new NatModel(kind, '198.18.1.1', rng);
  const localIp = nat ? '192.168.1.2' : '198.18.101.10';
  const obs: DiscoverObservation[] = [];
  let t = 0;
  for (const s of sockets) {
    for (const server of servers) {
      const internal = { ip: localIp, port: 40000 + s };
      obs.push({ socket: s, localPort: internal.port, server, observed: nat ? nat.outbound(internal, server) : internal, firstSentUs: t++ });
    }
  }
  return { obs, localIp };
}

describe(`nat classify (PILOT_SEED=${seed})`, () => {
  const expected: Record<ModelKind, string> = {
    none: 'none',
    // filtering is invisible to replies to our own requests: cones are reported as port-restricted
    'full-cone': 'port-restricted-cone',
    'restricted-cone': 'port-restricted-cone',
    'port-restricted-cone': 'port-restricted-cone',
    'symmetric-sequential': 'symmetric-sequential',
    'symmetric-random': 'symmetric-random',
  };
  for (const kind of Object.keys(expected) as ModelKind[]) {
    it(`${kind}: two beacon addresses from socket 0`, () => {
      const rng = new Rng(seed);
      const { obs, localIp } = observe(kind, [0], [B1, B2], rng);
      const c = classifyNat({ observations: obs, localIps: [localIp] });
      assert.equal(c.kind, expected[kind], c.summary);
      assert.deepEqual(c.publicEndpoint, obs[0]!.observed);
      if (kind === 'symmetric-sequential') {
        assert.equal(c.portDelta, 1);
        assert.equal(c.nextPort, obs[1]!.observed.port + 1);
        assert.match(c.summary, /ports \+1 per flow/);
      }
    });
  }

  it('two sockets × two addresses still separate sequential from random (100 seeds)', () => {
    for (let i = 0; i < 100; i++) {
      const rng = new Rng(seed + i);
      for (const kind of ['symmetric-sequential', 'symmetric-random'] as const) {
        const { obs, localIp } = observe(kind, [0, 1], [B1, B2], rng);
        assert.equal(classifyNat({ observations: obs, localIps: [localIp] }).kind, kind, `seed ${seed + i}`);
      }
    }
  });

  it('filtering evidence turns a cone into full or restricted', () => {
    const { obs, localIp } = observe('full-cone', [0], [B1, B2], new Rng(seed));
    assert.equal(classifyNat({ observations: obs, localIps: [localIp], filtering: { otherIp: true } }).kind, 'full-cone');
    assert.equal(classifyNat({ observations: obs, localIps: [localIp], filtering: { otherIp: false, otherPort: true } }).kind, 'restricted-cone');
    assert.equal(classifyNat({ observations: obs, localIps: [localIp], filtering: { otherIp: false, otherPort: false } }).filtering, 'address-and-port-dependent');
  });

  it('one beacon address: unknown, with a hint; no replies: unknown', () => {
    const { obs, localIp } = observe('port-restricted-cone', [0], [B1], new Rng(seed));
    const c = classifyNat({ observations: obs, localIps: [localIp] });
    assert.equal(c.kind, 'unknown');
    assert.match(c.summary, /--beacon-addr2/);
    assert.equal(classifyNat({ observations: [], localIps: [] }).summary, 'unknown (no beacon reply yet)');
  });

  it('a public host is "none" even with one beacon address', () => {
    const { obs, localIp } = observe('none', [0], [B1], new Rng(seed));
    const c = classifyNat({ observations: obs, localIps: [localIp] });
    assert.equal(c.kind, 'none');
    assert.equal(c.summary, 'none (public address) via 198.18.101.10:40000');
  });

  it('discovers sent at one instant: the send order, not the order the replies came back, orders the flows', () => {
    // The NAT gave 20000 to the flow to B1 (sent first) and 20001 to B2; B2's reply arrived first.
    const obs: DiscoverObservation[] = [
      { socket: 0, localPort: 40000, server: B2, observed: { ip: '198.18.1.1', port: 20001 }, firstSentUs: 5, sendSeq: 1 },
      { socket: 0, localPort: 40000, server: B1, observed: { ip: '198.18.1.1', port: 20000 }, firstSentUs: 5, sendSeq: 0 },
    ];
    const c = classifyNat({ observations: obs, localIps: ['192.168.1.2'] });
    assert.equal(c.kind, 'symmetric-sequential');
    assert.equal(c.portDelta, 1);
    assert.equal(c.nextPort, 20002);
  });
});
