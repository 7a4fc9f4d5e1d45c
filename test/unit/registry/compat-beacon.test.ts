// The beacon's second kind of source (issue 13): a channel (one WebSocket on the compat port), driven through
// BeaconServer.over with a fake UDP socket and fake channels — no I/O. A channel is a source endpoint like a
// UDP one: the same authentication, budgets and "relay only from the observed endpoint" rule; the differences
// (discover answers port 0, no punches, coalesced relay, 4 MiB cap, 1007 on bad messages) are checked here.
import test from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { silentLogger } from '../../../src/core/logger.js';
import { BeaconServer, MAX_CHANNEL_BUFFERED_BYTES, type BeaconChannel, type BeaconChannelHandle, type BeaconServerOptions, type BeaconSocket, type Remote } from '../../../src/registry/beacon.js';
import type { BeaconAuthority, BeaconNodeAuth } from '../../../src/registry/beacon-authority.js';
import {
  BEACON_TOKEN_BYTES,
  decodeBeaconMessage,
  encodeAuthenticatedBeaconMessage,
  encodeBeaconMessage,
  type BeaconMessage,
} from '../../../src/wire/beacon-message.js';
import { CLOSE_PROTOCOL_ERROR, decodeRecords, encodeRecords } from '../../../src/wire/compat-frames.js';

const ALICE = 1; // on UDP
const BOB = 2; // on a channel
const CAROL = 3; // on another channel
const MALLORY = 4; // registered, trusted by nobody

const tokenOf = (id: number) => new Uint8Array(BEACON_TOKEN_BYTES).fill(id);

class FakeAuthority implements BeaconAuthority {
  nodeAuth(nodeId: number): BeaconNodeAuth | null {
    return nodeId >= ALICE && nodeId <= MALLORY ? { token: tokenOf(nodeId), isLegacy: false } : null;
  }
  mayPunch(from: number, to: number): boolean {
    return from !== MALLORY && to !== MALLORY;
  }
}

class FakeSocket implements BeaconSocket {
  readonly sent: { msg: BeaconMessage; ip: string; port: number }[] = [];
  private fn: ((data: Uint8Array, from: Remote) => void) | null = null;
  send(data: Uint8Array, ip: string, port: number): void {
    const d = decodeBeaconMessage(Uint8Array.from(data));
    assert.ok(d.ok, 'the beacon sends valid messages');
    this.sent.push({ msg: d.value, ip, port });
  }
  onReceive(fn: (data: Uint8Array, from: Remote) => void): void {
    this.fn = fn;
  }
  deliver(data: Uint8Array, address: string, port: number): void {
    this.fn!(data, { address, port });
  }
  address(): AddressInfo {
    return { address: '127.0.0.1', family: 'IPv4', port: 9001 };
  }
  async close(): Promise<void> {}
}

class FakeChannel implements BeaconChannel {
  readonly messages: Uint8Array[] = [];
  buffered = 0;
  closedWith: { code: number; reason: string } | null = null;
  handle!: BeaconChannelHandle;
  constructor(readonly remote: Remote) {}
  send(msg: Uint8Array): void {
    this.messages.push(msg);
  }
  bufferedBytes(): number {
    return this.buffered;
  }
  close(code: number, reason: string): void {
    this.closedWith = { code, reason };
  }
  /** Every datagram received so far, decoded (records of every message). */
  datagrams(): BeaconMessage[] {
    return this.messages.flatMap((m) => {
      const r = decodeRecords(m);
      assert.ok(r.ok, 'the beacon sends whole records');
      return r.value.map((d) => {
        const b = decodeBeaconMessage(d);
        assert.ok(b.ok);
        return b.value;
      });
    });
  }
  /** Send datagrams as one message of records. */
  push(...datagrams: Uint8Array[]): void {
    const m = encodeRecords(datagrams);
    assert.ok(m.ok);
    this.handle.receive(m.value, true);
  }
}

let counter = 0;
function sealed(m: BeaconMessage, id: number): Uint8Array {
  counter = Math.max(counter + 1, Date.now() * 1000);
  const e = encodeAuthenticatedBeaconMessage(m, tokenOf(id), counter);
  assert.ok(e.ok);
  return e.value;
}
function bare(m: BeaconMessage): Uint8Array {
  const e = encodeBeaconMessage(m);
  assert.ok(e.ok);
  return e.value;
}
const relay = (from: number, to: number, text: string) =>
  bare({ kind: 'relay', senderNodeId: from, destNodeId: to, payload: new TextEncoder().encode(text) });
/** Let the beacon's per-turn flush run. */
const turn = () => new Promise((r) => setImmediate(r));

function world(extra: Partial<BeaconServerOptions> = {}) {
  const sock = new FakeSocket();
  const beacon = BeaconServer.over({ primary: sock }, { logger: silentLogger(), authority: new FakeAuthority(), ...extra });
  const channel = (address: string, port = 40000): FakeChannel => {
    const ch = new FakeChannel({ address, port });
    ch.handle = beacon.attachChannel(ch);
    return ch;
  };
  const alice = { ip: '198.51.100.7', port: 5000 };
  const aliceDiscovers = () => sock.deliver(sealed({ kind: 'discover', nodeId: ALICE }, ALICE), alice.ip, alice.port);
  return { sock, beacon, channel, alice, aliceDiscovers };
}

test('discover over a channel: answered over it with the TCP peer IPv4 and port 0; observedEndpoint stays null', async () => {
  const w = world();
  const bob = w.channel('::ffff:203.0.113.9');
  bob.push(sealed({ kind: 'discover', nodeId: BOB }, BOB));
  await turn();
  assert.deepEqual(bob.datagrams(), [{ kind: 'discover_reply', ip: '203.0.113.9', port: 0 }]);
  assert.equal(w.beacon.observedEndpoint(BOB), null, 'no UDP mapping to publish');
  assert.equal(w.sock.sent.length, 0);
  // A v6 peer: 0.0.0.0 (the reply carries an IPv4).
  const v6 = w.channel('2001:db8::1');
  v6.push(sealed({ kind: 'discover', nodeId: CAROL }, CAROL));
  await turn();
  assert.deepEqual(v6.datagrams(), [{ kind: 'discover_reply', ip: '0.0.0.0', port: 0 }]);
  assert.equal(w.beacon.stats.channels, 2);
  assert.equal(w.beacon.stats.channelsOpen, 2);
  await w.beacon.close();
});

test('discover over a channel follows the UDP auth rules: bare or replayed from a token holder is refused, nothing answered', async () => {
  const w = world();
  const bob = w.channel('203.0.113.9');
  bob.push(bare({ kind: 'discover', nodeId: BOB }));
  const once = sealed({ kind: 'discover', nodeId: BOB }, BOB);
  bob.push(once);
  bob.push(once); // replay
  bob.push(sealed({ kind: 'discover', nodeId: 99 }, 99)); // unknown id
  await turn();
  assert.equal(bob.datagrams().length, 1, 'only the one good discover is answered');
  assert.equal(w.beacon.stats.authFailed, 1);
  assert.equal(w.beacon.stats.replayed, 1);
  assert.equal(w.beacon.stats.unknownNode, 1);
  await w.beacon.close();
});

test('relay UDP → channel, coalesced: frames of one turn go out as one message of records', async () => {
  const w = world();
  w.aliceDiscovers();
  const bob = w.channel('203.0.113.9');
  bob.push(sealed({ kind: 'discover', nodeId: BOB }, BOB));
  await turn();
  bob.messages.length = 0;
  for (let i = 0; i < 5; i++) w.sock.deliver(relay(ALICE, BOB, `frame ${i}`), w.alice.ip, w.alice.port);
  assert.equal(bob.messages.length, 0, 'nothing sent before the turn ends');
  await turn();
  assert.equal(bob.messages.length, 1, 'one ws message for the turn');
  const got = bob.datagrams();
  assert.deepEqual(
    got.map((m) => (m.kind === 'relay_deliver' ? [m.senderNodeId, new TextDecoder().decode(m.payload)] : m.kind)),
    [0, 1, 2, 3, 4].map((i) => [ALICE, `frame ${i}`]),
  );
  assert.equal(w.beacon.stats.relayed, 5);
  await w.beacon.close();
});

test('relay channel → UDP and channel → channel', async () => {
  const w = world();
  w.aliceDiscovers();
  const bob = w.channel('203.0.113.9');
  const carol = w.channel('203.0.113.10');
  bob.push(sealed({ kind: 'discover', nodeId: BOB }, BOB));
  carol.push(sealed({ kind: 'discover', nodeId: CAROL }, CAROL));
  w.sock.sent.length = 0;
  // Two relay frames in one message: one to UDP Alice, one to Carol's channel.
  bob.push(relay(BOB, ALICE, 'to alice'), relay(BOB, CAROL, 'to carol'));
  await turn();
  const toAlice = w.sock.sent.filter((s) => s.msg.kind === 'relay_deliver');
  assert.equal(toAlice.length, 1);
  assert.equal(toAlice[0]!.ip, w.alice.ip);
  assert.equal(toAlice[0]!.port, w.alice.port);
  const m = toAlice[0]!.msg;
  assert.ok(m.kind === 'relay_deliver' && m.senderNodeId === BOB && new TextDecoder().decode(m.payload) === 'to alice');
  const atCarol = carol.datagrams().filter((d) => d.kind === 'relay_deliver');
  assert.equal(atCarol.length, 1);
  assert.ok(atCarol[0]!.kind === 'relay_deliver' && atCarol[0]!.senderNodeId === BOB);
  assert.equal(w.beacon.stats.relayed, 2);
  await w.beacon.close();
});

test('relay only from the observed endpoint: another channel or a UDP source claiming a channel node is refused', async () => {
  const w = world();
  w.aliceDiscovers();
  const bob = w.channel('203.0.113.9');
  bob.push(sealed({ kind: 'discover', nodeId: BOB }, BOB));
  const mallory = w.channel('203.0.113.9', 40001); // same IP, another connection
  mallory.push(relay(BOB, ALICE, 'forged'));
  w.sock.deliver(relay(BOB, ALICE, 'forged over udp'), '203.0.113.9', 0);
  // And the other way: Alice's id over a channel while her endpoint is UDP.
  mallory.push(relay(ALICE, BOB, 'forged as alice'));
  await turn();
  assert.equal(w.sock.sent.filter((s) => s.msg.kind === 'relay_deliver').length, 0);
  assert.equal(bob.datagrams().filter((d) => d.kind === 'relay_deliver').length, 0);
  assert.equal(w.beacon.stats.relayDropped, 3);
  assert.equal(w.beacon.stats.relayed, 0);
  await w.beacon.close();
});

test('punch to or from a channel node sends no punch command; counted', async () => {
  const w = world();
  w.aliceDiscovers();
  const bob = w.channel('203.0.113.9');
  bob.push(sealed({ kind: 'discover', nodeId: BOB }, BOB));
  await turn();
  bob.messages.length = 0;
  w.sock.sent.length = 0;
  w.sock.deliver(sealed({ kind: 'punch_request', fromNodeId: ALICE, toNodeId: BOB }, ALICE), w.alice.ip, w.alice.port);
  bob.push(sealed({ kind: 'punch_request', fromNodeId: BOB, toNodeId: ALICE }, BOB));
  await turn();
  assert.equal(w.sock.sent.length, 0);
  assert.equal(bob.messages.length, 0);
  assert.equal(w.beacon.stats.punchNoUdp, 2);
  assert.equal(w.beacon.stats.punches, 0);
  await w.beacon.close();
});

test('a message that is not whole records, or a text message, closes the channel with 1007 and forgets its nodes', async () => {
  const w = world();
  w.aliceDiscovers();
  const bob = w.channel('203.0.113.9');
  bob.push(sealed({ kind: 'discover', nodeId: BOB }, BOB));
  bob.handle.receive(Uint8Array.of(0, 9, 1, 2), true); // record runs past the end
  assert.deepEqual(bob.closedWith?.code, CLOSE_PROTOCOL_ERROR);
  assert.equal(w.beacon.stats.protocolErrors, 1);
  assert.equal(w.beacon.stats.channelsOpen, 0);
  // Bob's endpoint was the channel: gone, so relay to him is dropped.
  w.sock.deliver(relay(ALICE, BOB, 'late'), w.alice.ip, w.alice.port);
  assert.equal(w.beacon.stats.relayDropped, 1);
  bob.handle.closed(); // the owner's close after ours: idempotent
  assert.equal(w.beacon.stats.channelsOpen, 0);

  const text = w.channel('203.0.113.11');
  text.handle.receive(new TextEncoder().encode('hello'), false);
  assert.equal(text.closedWith?.code, CLOSE_PROTOCOL_ERROR);
  const empty = w.channel('203.0.113.12');
  empty.handle.receive(new Uint8Array(0), true);
  assert.equal(empty.closedWith?.code, CLOSE_PROTOCOL_ERROR);
  assert.equal(w.beacon.stats.protocolErrors, 3);
  await w.beacon.close();
});

test('a bad datagram inside whole records is dropped and counted as malformed; the channel stays', async () => {
  const w = world();
  const bob = w.channel('203.0.113.9');
  bob.push(Uint8Array.of(0xee, 1, 2, 3), sealed({ kind: 'discover', nodeId: BOB }, BOB));
  await turn();
  assert.equal(w.beacon.stats.malformed, 1);
  assert.equal(bob.closedWith, null);
  assert.equal(bob.datagrams().length, 1, 'the good discover after it is served');
  await w.beacon.close();
});

test('a channel buffering over 4 MiB: relayed frames to it are dropped (relayDropped), nothing queued', async () => {
  const w = world();
  w.aliceDiscovers();
  const bob = w.channel('203.0.113.9');
  bob.push(sealed({ kind: 'discover', nodeId: BOB }, BOB));
  await turn();
  bob.messages.length = 0;
  bob.buffered = MAX_CHANNEL_BUFFERED_BYTES - 100;
  w.sock.deliver(relay(ALICE, BOB, 'x'.repeat(50)), w.alice.ip, w.alice.port); // fits
  w.sock.deliver(relay(ALICE, BOB, 'x'.repeat(50)), w.alice.ip, w.alice.port); // the batch counts too: over
  await turn();
  assert.equal(bob.datagrams().length, 1);
  assert.equal(w.beacon.stats.channelBufferDropped, 1);
  assert.equal(w.beacon.stats.relayDropped, 1);
  bob.buffered = MAX_CHANNEL_BUFFERED_BYTES + 1;
  w.sock.deliver(relay(ALICE, BOB, 'y'), w.alice.ip, w.alice.port);
  await turn();
  assert.equal(bob.datagrams().length, 1);
  assert.equal(w.beacon.stats.channelBufferDropped, 2);
  await w.beacon.close();
});

test('a closed channel forgets the endpoints that pointed at it; a UDP discover moves a node off its channel', async () => {
  const w = world();
  w.aliceDiscovers();
  const bob = w.channel('203.0.113.9');
  bob.push(sealed({ kind: 'discover', nodeId: BOB }, BOB));
  const carol = w.channel('203.0.113.10');
  carol.push(sealed({ kind: 'discover', nodeId: CAROL }, CAROL));
  // Carol's UDP starts working: a UDP discover moves her endpoint to UDP; her channel's close then forgets nothing.
  w.sock.deliver(sealed({ kind: 'discover', nodeId: CAROL }, CAROL), '198.51.100.8', 6000);
  assert.equal(w.beacon.observedEndpoint(CAROL), '198.51.100.8:6000');
  carol.handle.closed();
  assert.equal(w.beacon.observedEndpoint(CAROL), '198.51.100.8:6000');
  bob.handle.closed();
  assert.deepEqual(w.beacon.tableSizes().nodes, 2, 'Alice and Carol remain');
  w.sock.deliver(relay(ALICE, BOB, 'gone'), w.alice.ip, w.alice.port);
  assert.equal(w.beacon.stats.relayDropped, 1);
  assert.equal(w.beacon.stats.channelsOpen, 0);
  await w.beacon.close();
});

test('a channel has its own control budget: a flood over it is rate limited like a UDP source', async () => {
  const w = world({ controlPacketsPerSec: 5 });
  const bob = w.channel('203.0.113.9');
  const flood = Array.from({ length: 40 }, () => sealed({ kind: 'discover', nodeId: BOB }, BOB));
  bob.push(...flood);
  await turn();
  assert.equal(bob.datagrams().length, 10, 'burst = 2 × rate');
  assert.equal(w.beacon.stats.rateLimited, 30);
  // Another channel from the same IP is another source.
  const other = w.channel('203.0.113.9', 40001);
  other.push(sealed({ kind: 'discover', nodeId: CAROL }, CAROL));
  await turn();
  assert.equal(other.datagrams().length, 1);
  await w.beacon.close();
});

test('a reconnect: discover on a new channel moves the node there; the old one closing later forgets nothing', async () => {
  const w = world();
  w.aliceDiscovers();
  const old = w.channel('203.0.113.9', 40000);
  old.push(sealed({ kind: 'discover', nodeId: BOB }, BOB));
  const fresh = w.channel('203.0.113.9', 40001);
  fresh.push(sealed({ kind: 'discover', nodeId: BOB }, BOB));
  old.handle.closed();
  await turn();
  fresh.messages.length = 0;
  w.sock.deliver(relay(ALICE, BOB, 'after reconnect'), w.alice.ip, w.alice.port);
  old.push(relay(BOB, ALICE, 'from the dead channel')); // ignored: closed
  await turn();
  assert.equal(fresh.datagrams().filter((d) => d.kind === 'relay_deliver').length, 1);
  assert.equal(w.sock.sent.filter((s) => s.msg.kind === 'relay_deliver').length, 0);
  assert.equal(w.beacon.stats.channelsOpen, 1);
  await w.beacon.close();
  assert.equal(w.beacon.stats.channelsOpen, 0, 'close() detaches the rest');
});
