// The emit side of the node's event stream: trust rows → trust.* events (trust/machine.ts trustEvents, and the
// machine emitting them on a real store), and the peer table → peer.connected / peer.disconnected / path.changed
// (src/node/peer-events.ts).
import test from 'node:test';
import assert from 'node:assert/strict';
import { trustEvents } from '../../../../src/node/trust/machine.js';
import { PeerEventTracker, type PeerPathView } from '../../../../src/node/peer-events.js';

test('trust rows → trust events: requests, approvals by whom, rejections, revocations; re-deliveries are quiet', () => {
  const t = (event: Parameters<typeof trustEvents>[1], from: Parameters<typeof trustEvents>[2], to: Parameters<typeof trustEvents>[3]) =>
    trustEvents(5, event, from, to, { hostname: 'b', justification: 'why' }).map((e) => `${e.type}${'by' in e.data ? ':' + e.data.by : ''}`);
  assert.deepEqual(t('request_received', 'none', 'incoming'), ['trust.request_received']);
  assert.deepEqual(t('request_received', 'incoming', 'incoming'), [], 'a re-delivered request is not a new one');
  assert.deepEqual(t('request_received', 'trusted', 'trusted'), []);
  assert.deepEqual(t('request_received_auto', 'none', 'trusted'), ['trust.request_received', 'trust.approved:auto']);
  assert.deepEqual(t('request_received', 'outgoing', 'trusted'), ['trust.request_received', 'trust.approved:peer'], 'crossed handshakes');
  assert.deepEqual(t('approve', 'incoming', 'trusted'), ['trust.approved:local']);
  assert.deepEqual(t('local_handshake', 'incoming', 'trusted'), ['trust.approved:local']);
  assert.deepEqual(t('local_handshake', 'none', 'outgoing'), []);
  assert.deepEqual(t('response_accept', 'outgoing', 'trusted'), ['trust.approved:peer']);
  assert.deepEqual(t('response_accept', 'trusted', 'trusted'), []);
  assert.deepEqual(t('approve', 'incoming', 'incoming'), [], 'an approval that did not reach trusted says nothing');
  assert.deepEqual(t('reject', 'incoming', 'none'), ['trust.rejected:local']);
  assert.deepEqual(t('response_reject', 'outgoing', 'none'), ['trust.rejected:peer']);
  assert.deepEqual(t('response_reject', 'trusted', 'trusted'), []);
  assert.deepEqual(t('untrust', 'trusted', 'none'), ['trust.revoked:local']);
  assert.deepEqual(t('revoked', 'trusted', 'none'), ['trust.revoked:peer']);
  assert.deepEqual(t('revoked', 'none', 'none'), []);
  const [req] = trustEvents(5, 'request_received', 'none', 'incoming', { hostname: 'b', justification: 'why' });
  assert.deepEqual(req, { type: 'trust.request_received', data: { node_id: 5, hostname: 'b', justification: 'why' } });
});

const S = 1_000_000;
function row(nodeId: number, path: 'direct' | 'relay', lastRecvUs: number): PeerPathView {
  return { nodeId, isUp: true, path, transport: 'udp', lastRecvUs };
}

test('peer tracker: connected once, path changes both ways, silence and return, closed with a reason', () => {
  const t = new PeerEventTracker(60 * S);
  assert.deepEqual(t.observe([row(2, 'relay', 1 * S)], 1 * S), [{ type: 'peer.connected', data: { node_id: 2, path: 'relay', transport: 'udp' } }]);
  assert.deepEqual(t.observe([row(2, 'relay', 2 * S)], 2 * S), [], 'no repeat');
  assert.deepEqual(t.observe([row(2, 'direct', 3 * S)], 3 * S), [{ type: 'path.changed', data: { node_id: 2, from: 'relay', to: 'direct' } }]);
  assert.deepEqual(t.observe([row(2, 'relay', 4 * S)], 4 * S), [{ type: 'path.changed', data: { node_id: 2, from: 'direct', to: 'relay' } }]);
  const quiet = t.observe([row(2, 'relay', 4 * S)], 65 * S);
  assert.equal(quiet.length, 1);
  assert.equal(quiet[0]!.type, 'peer.disconnected');
  assert.deepEqual(t.observe([row(2, 'relay', 4 * S)], 70 * S), [], 'silent once');
  assert.deepEqual(t.observe([row(2, 'direct', 71 * S)], 71 * S), [{ type: 'peer.connected', data: { node_id: 2, path: 'direct', transport: 'udp' } }]);
  assert.deepEqual(t.handleClosed(2, 'trust in node 2 was revoked'), [{ type: 'peer.disconnected', data: { node_id: 2, reason: 'trust in node 2 was revoked' } }]);
  assert.deepEqual(t.handleClosed(2, 'again'), [], 'closed once');
  assert.deepEqual(t.observe([], 72 * S), []);
});

test('peer tracker: a session that goes away is a disconnection; down rows and duplicates are ignored', () => {
  const t = new PeerEventTracker(60 * S);
  const ev = t.observe([row(3, 'direct', S), row(3, 'relay', S), { ...row(4, 'direct', S), isUp: false }], S);
  assert.deepEqual(ev.map((e) => e.type), ['peer.connected'], 'node 3 once (its first row), node 4 not up');
  assert.deepEqual(t.observe([], 2 * S), [{ type: 'peer.disconnected', data: { node_id: 3, reason: 'session closed' } }]);
  assert.deepEqual(t.observe([], 3 * S), []);
});
