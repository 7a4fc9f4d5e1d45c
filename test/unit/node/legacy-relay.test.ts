// v0.5 frames through the beacon relay (src/node/peers/legacy-suite.ts). An original node that receives any frame
// of ours through the beacon marks us relayed and from then on sends us everything as 0x05 relay → 0x06
// relay_deliver — its PILA answer included (the original's pkg/daemon/tunnel.go, handleRelayDeliver and
// writeFrame). Before this, our daemon dropped those deliveries, so `ping` to an original node failed with
// "no tunnel answer" although the original logged "encrypted tunnel established" for every attempt.
// Here the "original" is driven by hand (a LegacyKeyExchange and the wire codecs); UDP is a recording stub.
import test from 'node:test';
import assert from 'node:assert/strict';
import { err, ok } from '../../../src/core/result.js';
import { silentLogger } from '../../../src/core/logger.js';
import { generateIdentity } from '../../../src/crypto/identity.js';
import { LegacyKeyExchange, verifyPilaFrame, type LegacySession } from '../../../src/crypto/legacy-session.js';
import { decodePacket, encodePacket, FLAG_ACK, PROTO_CONTROL } from '../../../src/wire/header.js';
import { legacyFrameKind } from '../../../src/wire/legacy-frame.js';
import { decodeBeaconMessage } from '../../../src/wire/beacon-message.js';
import { legacyPingPacket } from '../../../src/transport/legacy-connection.js';
import { LegacySuite, type LegacySuiteDeps } from '../../../src/node/peers/legacy-suite.js';
import { Driver } from '../../../src/node/driver.js';
import { realTimers } from '../../../src/core/clock.js';
import { Rng } from '../../../src/core/rng.js';

const OURS = 2;
const ORIGINAL = 1;
const BEACON = { ip: '127.0.0.9', port: 9001 };
const ORIGINAL_EP = { ip: '127.0.0.1', port: 14011 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Sent {
  data: Uint8Array;
  ip: string;
  port: number;
}

function setup(opts: { relayOnly?: boolean } = {}) {
  const ourId = generateIdentity();
  const origId = generateIdentity();
  const sent: Sent[] = [];
  let t = 1_000_000;
  const driver = new Driver({ nowUs: () => (t += 1000) }, realTimers);
  const deps: LegacySuiteDeps = {
    identity: ourId,
    nodeId: () => OURS,
    logger: silentLogger(),
    driver,
    rng: new Rng(1),
    udp: { send: (data, ip, port) => void sent.push({ data: data.slice(), ip, port }) },
    relay: () => BEACON,
    ...(opts.relayOnly ? { relayOnly: true } : {}),
    registryKey: async (id) => (id === ORIGINAL ? ok(origId.publicKey) : err('not_found', `no node ${id}`)),
    authorize: async () => ok(),
    contact: async (id) => (id === ORIGINAL ? ok({ endpoints: opts.relayOnly ? [] : [ORIGINAL_EP] }) : err('not_found', 'no node')),
    onStreamSegment: () => {},
    deliverDatagram: () => {},
    allowInsecureLegacy: false,
    isTrusted: (id) => id === ORIGINAL, // the original is a trusted peer here (as after handshake + approve)
    isPublic: () => false,
  };
  const tunnels = new LegacySuite(deps);
  const original = new LegacyKeyExchange({ identity: origId, nodeId: ORIGINAL });
  /** A tunnel frame from the original as the beacon delivers it: the frame, from the beacon, sender named. */
  const deliverRelayed = (frame: Uint8Array, sender = ORIGINAL) => tunnels.handleFrame(frame.slice(), BEACON.ip, BEACON.port, t, sender);
  /** Frames we sent to the beacon as 0x05 relay: [sender][dest][frame]. */
  const relayed = () =>
    sent.flatMap((s) => {
      if (s.ip !== BEACON.ip || s.port !== BEACON.port) return [];
      const m = decodeBeaconMessage(s.data);
      return m.ok && m.value.kind === 'relay' ? [{ sender: m.value.senderNodeId, dest: m.value.destNodeId, frame: m.value.payload }] : [];
    });
  /** The original accepts our PILA (it checks our key against the registry) and derives the shared session. */
  const originalAccepts = (pila: Uint8Array): LegacySession => {
    const v = verifyPilaFrame(pila);
    assert.ok(v.ok);
    const a = original.accept(v.value, ourId.publicKey, t, null);
    assert.ok(a.ok);
    return a.value.session;
  };
  return { tunnels, original, sent, relayed, deliverRelayed, originalAccepts, close: () => {
    tunnels.close();
    driver.close();
  } };
}

test('a PILA the original relays through the beacon is answered through the beacon, and a relayed ping gets its pong there (regression: ours → original ping got no answer)', async () => {
  const s = setup();
  try {
    assert.equal(s.deliverRelayed(s.original.authFrame()), true);
    await sleep(10); // registry key lookup + authorization
    assert.ok(s.tunnels.hasSession(ORIGINAL), 'the relayed PILA set up the v0.5 session');
    const answers = s.relayed().filter((r) => legacyFrameKind(r.frame) === 'PILA');
    assert.equal(answers.length, 1, 'our PILA went back through the relay');
    assert.deepEqual([answers[0]!.sender, answers[0]!.dest], [OURS, ORIGINAL]);
    assert.equal(s.sent.filter((x) => x.ip === BEACON.ip && legacyFrameKind(x.data) !== null).length, 0, 'no bare tunnel frame to the beacon');
    const session = s.originalAccepts(answers[0]!.frame);
    // The original pings us (control packet to port 0), through the relay.
    const ping = encodePacket(legacyPingPacket({ network: 0, node: ORIGINAL }, { network: 0, node: OURS }, 50000, 7));
    assert.ok(ping.ok);
    const pils = session.seal(ping.value, 0);
    assert.ok(pils.ok);
    s.deliverRelayed(pils.value);
    const pong = s.relayed().filter((r) => legacyFrameKind(r.frame) === 'PILS');
    assert.equal(pong.length, 1, 'the pong went through the relay');
    const opened = session.open(pong[0]!.frame.slice(), 0);
    assert.ok(opened.ok, 'sealed with the key both sides derived');
    const p = decodePacket(opened.value);
    assert.ok(p.ok);
    assert.equal(p.value.protocol, PROTO_CONTROL);
    assert.ok((p.value.flags & FLAG_ACK) !== 0);
    assert.equal(p.value.seq, 7);
    assert.equal(s.tunnels.peers()[0]?.isRelayed, true, 'peers() reports the relayed path');
  } finally {
    s.close();
  }
});

test('our connect() meets an original that answers through the relay (it marked us relayed earlier)', async () => {
  const s = setup();
  try {
    const c = s.tunnels.connect(ORIGINAL, 3000);
    await sleep(10);
    const direct = s.sent.filter((x) => x.ip === ORIGINAL_EP.ip && x.port === ORIGINAL_EP.port && legacyFrameKind(x.data) === 'PILA');
    assert.ok(direct.length >= 1, 'our PILA went to the original directly');
    s.originalAccepts(direct[0]!.data);
    s.deliverRelayed(s.original.authFrame()); // its answer, through the beacon
    const r = await c;
    assert.ok(r.ok, r.ok ? '' : r.error.message);
  } finally {
    s.close();
  }
});

test('a relayed frame naming another node than the relay sender is dropped (a node cannot speak for another through the beacon)', async () => {
  const s = setup();
  try {
    s.deliverRelayed(s.original.authFrame(), 77);
    await sleep(10);
    assert.equal(s.tunnels.hasSession(ORIGINAL), false);
    assert.equal(s.sent.length, 0, 'nothing answered');
  } finally {
    s.close();
  }
});

test('--relay-only: connect() sends its PILA through the relay only, and works with no direct endpoint', async () => {
  const s = setup({ relayOnly: true });
  try {
    const c = s.tunnels.connect(ORIGINAL, 3000);
    await sleep(10);
    assert.equal(s.sent.filter((x) => x.ip === ORIGINAL_EP.ip).length, 0, 'nothing direct');
    const out = s.relayed().filter((r) => legacyFrameKind(r.frame) === 'PILA');
    assert.ok(out.length >= 1, 'our PILA went through the relay');
    s.originalAccepts(out[0]!.frame);
    s.deliverRelayed(s.original.authFrame());
    const r = await c;
    assert.ok(r.ok, r.ok ? '' : r.error.message);
  } finally {
    s.close();
  }
});

test('a replayed PILA (relayed or from another address) does not move the path of an established session (attack: path hijack by replaying the static PILA)', async () => {
  const s = setup();
  try {
    // The original reaches us directly; the session is up on its endpoint.
    s.tunnels.handleFrame(s.original.authFrame().slice(), ORIGINAL_EP.ip, ORIGINAL_EP.port, 2_000_000);
    await sleep(10);
    assert.ok(s.tunnels.hasSession(ORIGINAL));
    const before = s.tunnels.peers()[0];
    assert.deepEqual([before?.endpoint, before?.isRelayed], [`${ORIGINAL_EP.ip}:${ORIGINAL_EP.port}`, false]);
    // An attacker replays the same PILA through the beacon and from its own address.
    s.deliverRelayed(s.original.authFrame());
    s.tunnels.handleFrame(s.original.authFrame().slice(), '10.6.6.6', 6666, 3_000_000);
    await sleep(10);
    const after = s.tunnels.peers()[0];
    assert.deepEqual([after?.endpoint, after?.isRelayed], [`${ORIGINAL_EP.ip}:${ORIGINAL_EP.port}`, false], 'path unchanged');
  } finally {
    s.close();
  }
});
