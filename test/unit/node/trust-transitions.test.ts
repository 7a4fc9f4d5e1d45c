// src/node/trust/transitions.ts (the trust state machine as a table) and trust/machine.ts (which runs it on a
// real TrustStore with a fake registry): every state × event, the refusals, and the failures half-way.
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ok, err, type Result } from '../../../src/core/result.js';
import { silentLogger } from '../../../src/core/logger.js';
import { ManualClock } from '../../../src/core/clock.js';
import { Driver, VirtualTimers } from '../../../src/node/driver.js';
import { TrustStore } from '../../../src/node/trust/store.js';
import { TrustMachine } from '../../../src/node/trust/machine.js';
import { TRUST_TABLE, requestEvent, stateOf, transition, type TrustEvent, type TrustState } from '../../../src/node/trust/transitions.js';

const STATES: TrustState[] = ['none', 'outgoing', 'incoming', 'crossed', 'trusted'];
const EVENTS: TrustEvent[] = ['local_handshake', 'request_received', 'request_received_auto', 'response_accept', 'response_reject', 'approve', 'reject', 'untrust', 'revoked'];

// What each cell must lead to, written out by hand from what the node did before the table (daemon.ts
// handshake/approve/reject/untrust/handleIncomingHandshake/handleHandshakeResponse/handleTrustRevoked).
// 'refused' = the event is refused (not_found) and nothing changes.
const EXPECTED: Record<TrustState, Record<TrustEvent, TrustState | 'refused'>> = {
  none: { local_handshake: 'outgoing', request_received: 'incoming', request_received_auto: 'trusted', response_accept: 'none', response_reject: 'none', approve: 'refused', reject: 'refused', untrust: 'refused', revoked: 'none' },
  outgoing: { local_handshake: 'outgoing', request_received: 'trusted', request_received_auto: 'trusted', response_accept: 'trusted', response_reject: 'none', approve: 'refused', reject: 'refused', untrust: 'refused', revoked: 'outgoing' },
  incoming: { local_handshake: 'trusted', request_received: 'incoming', request_received_auto: 'trusted', response_accept: 'incoming', response_reject: 'incoming', approve: 'trusted', reject: 'none', untrust: 'refused', revoked: 'incoming' },
  crossed: { local_handshake: 'trusted', request_received: 'trusted', request_received_auto: 'trusted', response_accept: 'trusted', response_reject: 'incoming', approve: 'trusted', reject: 'outgoing', untrust: 'refused', revoked: 'crossed' },
  trusted: { local_handshake: 'trusted', request_received: 'trusted', request_received_auto: 'trusted', response_accept: 'trusted', response_reject: 'trusted', approve: 'refused', reject: 'refused', untrust: 'none', revoked: 'none' },
};

// The registry messages each cell sends (in order).
const MESSAGES: Partial<Record<`${TrustState}.${TrustEvent}`, string[]>> = {
  'none.local_handshake': ['requestHandshake'],
  'none.request_received_auto': ['respondHandshake(true)', 'reportTrust'],
  'outgoing.local_handshake': ['requestHandshake'],
  'outgoing.request_received': ['respondHandshake(true)', 'reportTrust'],
  'outgoing.request_received_auto': ['respondHandshake(true)', 'reportTrust'],
  'outgoing.response_accept': ['reportTrust'],
  'incoming.local_handshake': ['respondHandshake(true)', 'reportTrust'],
  'incoming.request_received_auto': ['respondHandshake(true)', 'reportTrust'],
  'incoming.approve': ['respondHandshake(true)', 'reportTrust'],
  'incoming.reject': ['respondHandshake(false)'],
  'crossed.local_handshake': ['respondHandshake(true)', 'reportTrust'],
  'crossed.request_received': ['respondHandshake(true)', 'reportTrust'],
  'crossed.request_received_auto': ['respondHandshake(true)', 'reportTrust'],
  'crossed.response_accept': ['reportTrust'],
  'crossed.approve': ['respondHandshake(true)', 'reportTrust'],
  'crossed.reject': ['respondHandshake(false)'],
  'trusted.request_received': ['respondHandshake(true)'],
  'trusted.request_received_auto': ['respondHandshake(true)'],
  'trusted.untrust': ['revokeTrust'],
};

const PEER = 42;
const KEY = 'a2V5LW9mLXRoZS1wZWVyLW5vZGUtNDItMzItYnl0ZXM=';

interface Fixture {
  machine: TrustMachine;
  store: TrustStore;
  sent: string[];
  dropped: number[];
  hostnames: Map<number, string>;
  fail: { requestHandshake?: Result<void>; peerKey?: Result<string>; respondHandshake?: Result<void> };
  done(): void;
}

function fixture(isAutoApprove = false): Fixture {
  const dir = mkdtempSync(join(tmpdir(), 'trust-tx-'));
  const clock = new ManualClock(0);
  const driver = new Driver(clock, new VirtualTimers(clock));
  const s = TrustStore.open(join(dir, 'trust.json'), 0, driver, { pendingWriteDelayMs: 0 });
  assert.ok(s.ok);
  const store = s.value;
  const sent: string[] = [];
  const dropped: number[] = [];
  const hostnames = new Map<number, string>();
  const fail: Fixture['fail'] = {};
  const machine = new TrustMachine({
    store,
    registry: {
      requestHandshake: async () => (sent.push('requestHandshake'), fail.requestHandshake ?? ok()),
      respondHandshake: async (_id: number, accept: boolean) => (sent.push(`respondHandshake(${accept})`), fail.respondHandshake ?? ok()),
      reportTrust: async () => (sent.push('reportTrust'), ok()),
      revokeTrust: async () => (sent.push('revokeTrust'), ok()),
    },
    peers: {
      // As the resolver's: the registry lookup also tells us the hostname.
      peerKey: async (id) => fail.peerKey ?? (hostnames.set(id, 'peer-42'), ok(KEY)),
      hostnameOf: (id) => hostnames.get(id) ?? null,
      learnHostname: (id, h) => void hostnames.set(id, h),
    },
    dropPeer: (id) => void dropped.push(id),
    wall: { nowMs: () => 1_800_000_000_000 },
    logger: silentLogger(),
    isAutoApprove,
  });
  return { machine, store, sent, dropped, hostnames, fail, done: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Put PEER into `state` through the store itself. */
function enter(f: Fixture, state: TrustState): void {
  const iso = new Date(1_800_000_000_000).toISOString();
  if (state === 'outgoing' || state === 'crossed') assert.ok(f.store.addOutgoing({ node_id: PEER, justification: 'ours', sent_at: iso }).ok);
  if (state === 'incoming' || state === 'crossed') {
    assert.ok(f.store.addPending({ node_id: PEER, justification: 'theirs', hostname: 'peer-42', public_key: KEY, received_at: iso }).ok);
  }
  if (state === 'trusted') assert.ok(f.store.addTrusted({ node_id: PEER, public_key: KEY, hostname: 'peer-42', approved_at: iso, mutual: false }).ok);
  assert.equal(f.machine.stateOf(PEER), state);
}

test('the table has a row for every state × event, and its next states are the ones the node had', () => {
  for (const s of STATES) {
    for (const e of EVENTS) {
      const row = transition(s, e);
      assert.ok(row, `${s} × ${e}`);
      const want = EXPECTED[s][e];
      if (want === 'refused') {
        assert.ok(row.refuse, `${s} × ${e} is refused`);
        assert.equal(row.next, s);
        assert.deepEqual(row.effects, []);
      } else {
        assert.equal(row.refuse, undefined, `${s} × ${e} is not refused`);
        assert.equal(row.next, want, `${s} × ${e}`);
      }
    }
  }
  assert.deepEqual(Object.keys(TRUST_TABLE).sort(), [...STATES].sort());
});

test('the state is read off the store: pending and outgoing together are crossed, a pin wins', () => {
  assert.equal(stateOf({ isTrusted: false, hasPending: false, hasOutgoing: false }), 'none');
  assert.equal(stateOf({ isTrusted: false, hasPending: false, hasOutgoing: true }), 'outgoing');
  assert.equal(stateOf({ isTrusted: false, hasPending: true, hasOutgoing: false }), 'incoming');
  assert.equal(stateOf({ isTrusted: false, hasPending: true, hasOutgoing: true }), 'crossed');
  assert.equal(stateOf({ isTrusted: true, hasPending: true, hasOutgoing: true }), 'trusted');
  assert.equal(requestEvent(false), 'request_received');
  assert.equal(requestEvent(true), 'request_received_auto');
});

for (const s of STATES) {
  for (const e of EVENTS) {
    test(`${s} × ${e} → ${EXPECTED[s][e]}`, async () => {
      const f = fixture();
      try {
        enter(f, s);
        const r = await f.machine.apply(PEER, e, { justification: 'please', hostname: 'peer-42', publicKey: KEY });
        const want = EXPECTED[s][e];
        if (want === 'refused') {
          assert.equal(r.ok, false);
          assert.equal(!r.ok && r.error.code, 'not_found');
          assert.equal(f.machine.stateOf(PEER), s, 'a refusal changes nothing');
          assert.deepEqual(f.sent, []);
          assert.deepEqual(f.dropped, []);
          return;
        }
        assert.ok(r.ok, !r.ok ? r.error.message : '');
        assert.equal(f.machine.stateOf(PEER), want);
        assert.deepEqual(f.sent, MESSAGES[`${s}.${e}`] ?? [], 'registry messages');
        const unpinned = s === 'trusted' && want === 'none';
        assert.deepEqual(f.dropped, unpinned ? [PEER] : [], 'tunnels dropped only when unpinned');
        if (want === 'trusted' && s !== 'trusted') {
          const t = f.store.getTrusted(PEER)!;
          assert.equal(t.public_key, KEY, 'the pin is the key the lookup gave');
          assert.equal(t.hostname, 'peer-42');
          assert.equal(t.mutual, true);
          assert.equal(f.store.getPending(PEER), undefined);
          assert.equal(f.store.getOutgoing(PEER), undefined);
        }
        if (s === 'trusted' && e === 'response_accept') assert.equal(f.store.getTrusted(PEER)!.mutual, true);
        if (e === 'local_handshake') assert.equal(r.value, s === 'trusted' ? 'already_trusted' : want === 'trusted' ? 'approved' : 'pending');
      } finally {
        f.done();
      }
    });
  }
}

test('auto-approve: the node maps an incoming request to the auto event and trusts at once', async () => {
  const f = fixture(true);
  try {
    const r = await f.machine.requestReceived(PEER, { justification: 'hi', hostname: 'peer-42', publicKey: KEY });
    assert.ok(r.ok);
    assert.equal(f.machine.stateOf(PEER), 'trusted');
    assert.equal(f.hostnames.get(PEER), 'peer-42');
  } finally {
    f.done();
  }
});

test('a re-delivered request without hostname or key keeps what the first delivery said, and its time', async () => {
  const f = fixture();
  try {
    assert.ok((await f.machine.requestReceived(PEER, { justification: 'first', hostname: 'peer-42', publicKey: KEY })).ok);
    const first = f.store.getPending(PEER)!;
    assert.ok((await f.machine.requestReceived(PEER, { justification: '', hostname: null, publicKey: null })).ok);
    const again = f.store.getPending(PEER)!;
    assert.deepEqual(again, first);
  } finally {
    f.done();
  }
});

test('refused: our handshake that the registry refuses is not left outgoing; already_exists still counts as pending', async () => {
  const f = fixture();
  try {
    f.fail.requestHandshake = err('connection_failed', 'registry down');
    const r = await f.machine.apply(PEER, 'local_handshake', { justification: 'x' });
    assert.equal(r.ok, false);
    assert.equal(f.machine.stateOf(PEER), 'none');
    f.fail.requestHandshake = err('already_exists', 'already asked');
    const again = await f.machine.apply(PEER, 'local_handshake', { justification: 'x' });
    assert.ok(again.ok);
    assert.equal(again.value, 'pending');
    assert.equal(f.machine.stateOf(PEER), 'outgoing');
  } finally {
    f.done();
  }
});

test('an approval whose key lookup fails stays incoming, and sends nothing; the answer to our request then crosses', async () => {
  const f = fixture();
  try {
    enter(f, 'incoming');
    f.fail.peerKey = err('not_found', 'no such node');
    const r = await f.machine.apply(PEER, 'approve');
    assert.equal(r.ok, false);
    assert.equal(f.machine.stateOf(PEER), 'incoming');
    assert.deepEqual(f.sent, []);
    // A handshake of ours that cannot approve either leaves both requests standing: crossed.
    assert.ok(f.store.addOutgoing({ node_id: PEER, justification: 'ours', sent_at: new Date(0).toISOString() }).ok);
    assert.equal(f.machine.stateOf(PEER), 'crossed');
    delete f.fail.peerKey;
    assert.ok((await f.machine.apply(PEER, 'response_accept')).ok);
    assert.equal(f.machine.stateOf(PEER), 'trusted');
  } finally {
    f.done();
  }
});

test('an accept from a node we cannot look up is not trusted', async () => {
  const f = fixture();
  try {
    enter(f, 'outgoing');
    f.fail.peerKey = err('not_found', 'no such node');
    assert.equal((await f.machine.apply(PEER, 'response_accept')).ok, false);
    assert.equal(f.machine.stateOf(PEER), 'outgoing');
    assert.deepEqual(f.sent, []);
  } finally {
    f.done();
  }
});

test('an approval the registry does not carry is not pinned', async () => {
  const f = fixture();
  try {
    enter(f, 'incoming');
    f.fail.respondHandshake = err('connection_failed', 'registry down');
    assert.equal((await f.machine.apply(PEER, 'approve')).ok, false);
    assert.equal(f.machine.stateOf(PEER), 'incoming');
  } finally {
    f.done();
  }
});

test('events for one peer run in order: an approve and a reject sent together do not both act on "incoming"', async () => {
  const f = fixture();
  try {
    enter(f, 'incoming');
    const [a, r] = await Promise.all([f.machine.apply(PEER, 'approve'), f.machine.apply(PEER, 'reject')]);
    assert.ok(a.ok);
    assert.equal(!r.ok && r.error.code, 'not_found', 'the reject saw the approval: nothing pending any more');
    assert.equal(f.machine.stateOf(PEER), 'trusted');
    assert.deepEqual(f.sent, ['respondHandshake(true)', 'reportTrust']);
  } finally {
    f.done();
  }
});
