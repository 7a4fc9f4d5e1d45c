import test from 'node:test';
import assert from 'node:assert/strict';
import { pilotError } from '../../../src/core/errors.js';
import { datapathReason, heartbeatReport, natReason, registryStatus, transportReason } from '../../../src/node/status.js';

test('registry status: never registered, registered, lost — each with a reason and, when failing, the two ways out', () => {
  const refused = pilotError('connection_failed', 'registry 127.0.0.1:9000: connect ECONNREFUSED');
  const none = registryStatus({ nodeId: 0, isRegistryUp: false, registry: '127.0.0.1:9000', lastConnectError: refused });
  assert.equal(none.registered, false);
  assert.equal(none.registry_state, 'connecting');
  assert.match(none.registry_reason, /^not registered: no rendezvous at 127\.0\.0\.1:9000 \(registry 127\.0\.0\.1:9000: connect ECONNREFUSED\)/);
  assert.match(none.registry_error!.hint!, /pilotctl rendezvous start/);
  assert.match(none.registry_error!.hint!, /--registry HOST:PORT/);
  assert.equal(registryStatus({ nodeId: 0, isRegistryUp: false, registry: 'r:1', lastConnectError: null }).registry_reason, 'not registered yet: connecting to r:1');
  const up = registryStatus({ nodeId: 7, isRegistryUp: true, registry: 'r:1', lastConnectError: null });
  assert.deepEqual([up.registered, up.registry_state, up.registry_error], [true, 'registered', null]);
  assert.equal(registryStatus({ nodeId: 7, isRegistryUp: false, registry: 'r:1', lastConnectError: refused }).registry_state, 'reconnecting');
});

test('nat, datapath and transport reasons; the heartbeat report counts peers that are up, by path', () => {
  assert.match(natReason({ transportMode: 'tcp', natType: null, beacon: 'b:1', hasBeacon2: false, isRegistryUp: true }), /--transport tcp/);
  assert.match(natReason({ transportMode: 'auto', natType: 'full-cone', beacon: 'b:1', hasBeacon2: true, isRegistryUp: true }), /second beacon/);
  assert.match(natReason({ transportMode: 'auto', natType: null, beacon: 'b:1', hasBeacon2: false, isRegistryUp: false }), /once registered/);
  assert.match(datapathReason('dgram', 'PILOT_NATIVE=0'), /^node:dgram: PILOT_NATIVE=0/);
  assert.match(datapathReason('native', null), /native addon/);
  assert.equal(transportReason('auto: the beacon answers over UDP', 'udp', null), 'auto: the beacon answers over UDP');
  assert.match(transportReason('r', 'wss', { isRegistered: false, state: 'open' }), /open, registering/);
  assert.equal(heartbeatReport(null, [], 'udp'), null);
  const peers = [{ isUp: true, isRelayed: false }, { isUp: true, isRelayed: true }, { isUp: false, isRelayed: true }];
  assert.deepEqual(heartbeatReport('symmetric-random', peers, 'wss'), { nat_type: 'symmetric-random', peers_direct: 1, peers_relayed: 1, transport: 'wss' });
});
