// The path engine's own rules, event by event (the NAT model in traversal.test.ts runs it end to end):
// flows opened since the classification move the predicted port, and the two-sided birthday retries.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../../src/core/index.js';
import { BIRTHDAY_READY, decodeNatInfo, encodeNatInfo, NAT_TIMING, PathEngine, type PathAction, type PeerView } from '../../../src/nat/index.js';

const B1 = { ip: '198.18.100.10', port: 9001 };
const B2 = { ip: '198.18.100.11', port: 9001 };
const PEER = 7;

function engine(relayed = true) {
  const view: PeerView = { nodeId: PEER, isUp: true, isRelayed: relayed, lastRecvUs: 0 };
  const e = new PathEngine({
    rng: new Rng(1),
    beacons: [B1, B2],
    hasRelay: true,
    relayOnly: false,
    nodeId: () => 1,
    localPort: () => 40000,
    localIps: () => ['192.168.1.2'],
    peer: (id) => (id === PEER ? view : null),
    peers: () => [view],
    busyPeers: () => [],
    acceptsPunchFrom: () => false,
  });
  const drain = (): PathAction[] => {
    const out: PathAction[] = [];
    for (let a = e.pollAction(); a; a = e.pollAction()) out.push(a);
    return out;
  };
  /** Classified as a sequential NAT: the beacons saw ports 20000 and 20001. */
  const classifySequential = () => {
    e.discover(0);
    e.handleDiscoverReply(B1, { ip: '198.18.1.1', port: 20000 }, 30_000);
    e.handleDiscoverReply(B2, { ip: '198.18.1.1', port: 20001 }, 30_000);
    drain();
  };
  return { e, view, drain, classifySequential };
}

it('paths: the predicted next port counts the new flows opened since the classification', () => {
  const { e, classifySequential } = engine();
  e.noteFlow(B1.ip, B1.port); // the discovers' flows came before the classification
  e.noteFlow(B2.ip, B2.port);
  classifySequential();
  const first = decodeNatInfo(e.natInfo()!);
  assert.ok(first.ok);
  assert.equal(first.value.nextPort, 20002);
  e.noteFlow('203.0.113.1', 1);
  e.noteFlow('203.0.113.1', 2);
  e.noteFlow('203.0.113.1', 1); // not a new flow
  e.noteFlow(B1.ip, B1.port);
  const info = decodeNatInfo(e.natInfo()!);
  assert.ok(info.ok);
  assert.equal(info.value.kind, 'symmetric-sequential');
  assert.equal(info.value.nextPort, 20004);
  assert.equal(info.value.portDelta, 1);
});

it(`paths: two-sided birthday, sequential side — ${NAT_TIMING.birthday2dPredictedPorts} probes per attempt, ${NAT_TIMING.birthday2dAttempts} attempts ${NAT_TIMING.birthday2dRetryUs / 1e6} s apart`, () => {
  const { e, view, drain, classifySequential } = engine();
  classifySequential();
  const theirs = encodeNatInfo({ kind: 'symmetric-random', publicEndpoint: { ip: '198.18.2.1', port: 31000 }, nextPort: 0, portDelta: 0 });
  assert.ok(theirs.ok);
  e.handleControl(view, theirs.value, 0);
  assert.equal(e.strategyOf(PEER), 'birthday-2d');
  assert.ok(drain().some((a) => a.kind === 'nat_info'), 'ours goes back');
  let now = 100_000;
  let reannounced = 0;
  for (let attempt = 1; attempt <= NAT_TIMING.birthday2dAttempts + 2; attempt++) {
    e.handleControl(view, Uint8Array.of(BIRTHDAY_READY), now);
    let probes = 0;
    const until = now + NAT_TIMING.birthday2dRetryUs;
    for (let t = e.pollTimeout(); t !== null && t <= until; t = e.pollTimeout()) {
      e.handleTimeout(t);
      for (const a of drain()) {
        if (a.kind === 'punch' && a.to.ip === '198.18.2.1') probes++;
        if (a.kind === 'nat_info') reannounced++;
      }
    }
    now = until + 1;
    assert.equal(probes, NAT_TIMING.birthday2dPredictedPorts, `attempt ${attempt}`);
  }
  // each attempt but the last re-announces the advanced next port; READYs after the last still probe
  assert.equal(reannounced, NAT_TIMING.birthday2dAttempts - 1);
});
