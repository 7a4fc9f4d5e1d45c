// src/node/peers/noise-suite.ts over an in-memory network: the cookie round trip under load, and the receiver's
// own refusal of an initiator it does not authorize (issue 10).
import test from 'node:test';
import assert from 'node:assert/strict';
import { ok, err, type Result } from '../../../src/core/result.js';
import { silentLogger } from '../../../src/core/logger.js';
import { monotonicClock, realWallClock, type Timers } from '../../../src/core/clock.js';
import { Rng } from '../../../src/core/rng.js';
import { Driver } from '../../../src/node/driver.js';
import { generateIdentity } from '../../../src/crypto/identity.js';
import { noiseFrameKind } from '../../../src/wire/noise-frame.js';
import { NoiseSuite, type TunnelDeps } from '../../../src/node/peers/noise-suite.js';
import { createJsAead, ipv4ToU32, type AeadBatch, type TunnelKeyTable } from '../../../src/datapath/index.js';
import type { DataCipher, DataCipherSupport } from '../../../src/crypto/data-cipher.js';

/**
 * The native socket's tunnel key table, in JS (src/datapath/types.ts TunnelKeyTable): seals the packets a batch
 * marks, and opens PND1 frames for installed indices before the suite sees them, as the reader thread does.
 */
class FakeKeyTable implements TunnelKeyTable {
  readonly tx = new Map<number, AeadBatch>();
  readonly rx = new Map<number, AeadBatch>();
  readonly ciphers = new Map<number, DataCipher>();
  sealed = 0;
  opened = 0;
  readonly dataCiphers: DataCipherSupport | null;
  /** JS-side AEADs made through dataCiphers (frames the table does not seal or open itself). */
  jsAeadsMade = 0;
  constructor(aes: boolean) {
    this.dataCiphers = aes ? { ciphers: ['aes-256-gcm'], create: (c, key) => (this.jsAeadsMade++, createJsAead(c, key)) } : null;
  }
  install(localIndex: number, sendKey: Uint8Array, recvKey: Uint8Array, cipher: DataCipher = 'chacha20-poly1305'): boolean {
    this.tx.set(localIndex, createJsAead(cipher, sendKey));
    this.rx.set(localIndex, createJsAead(cipher, recvKey));
    this.ciphers.set(localIndex, cipher);
    return true;
  }
  remove(localIndex: number): void {
    this.tx.delete(localIndex);
    this.rx.delete(localIndex);
  }
  seal(frame: Uint8Array, keyId: number): void {
    const a = this.tx.get(keyId);
    assert.ok(a, `sealed with key ${keyId}, which the table does not hold`);
    assert.equal(a.seal(frame, new Uint32Array([0, frame.length, 0, 0]), 1), 1);
    this.sealed++;
  }
  /** true when opened (authentic) in place; null when not ours to open. */
  open(frame: Uint8Array): boolean | null {
    if (noiseFrameKind(frame) !== 'data') return null;
    const a = this.rx.get(new DataView(frame.buffer, frame.byteOffset).getUint32(4, true));
    if (!a) return null;
    const status = new Uint8Array(1);
    a.open(frame, new Uint32Array([0, frame.length, 0, 0]), 1, status);
    if (status[0] === 1) this.opened++;
    return status[0] === 1;
  }
}

/** Real timers that keep the test's event loop alive (realTimers unref: a daemon's socket keeps it alive). */
const timers: Timers = { set: (ms, fn) => setTimeout(fn, ms), clear: (h) => clearTimeout(h as NodeJS.Timeout), soon: (fn) => void setImmediate(fn) };

interface Node {
  id: number;
  ip: string;
  tm: NoiseSuite;
  sentKinds: string[];
  authorizeCalls: number;
  keys: FakeKeyTable | null;
  plaintexts: string[];
  lastOpened: Uint8Array | null;
}

function network(opts: { underLoadPerS?: number; authorize?: (id: number) => boolean; keyTable?: boolean; aes?: (id: number) => boolean; routeMtu?: number } = {}) {
  const nodes = new Map<string, Node>();
  const drivers: Driver[] = [];
  const make = (id: number): Node => {
    const identity = generateIdentity();
    const ip = `10.0.0.${id}`;
    const keys = opts.keyTable ? new FakeKeyTable(opts.aes?.(id) ?? false) : null;
    const node = { id, ip, sentKinds: [], authorizeCalls: 0, identity, keys, plaintexts: [], lastOpened: null } as unknown as Node & { identity: typeof identity };
    const send = (data: Uint8Array, toIp: string, toPort: number, keyId = 0) => {
      node.sentKinds.push(noiseFrameKind(data) ?? 'other');
      const copy = data.slice();
      if (keyId !== 0) keys!.seal(copy, keyId);
      setImmediate(() => {
        const to = nodes.get(`${toIp}:${toPort}`);
        if (!to) return;
        const opened = to.keys?.open(copy) ?? null;
        if (opened === true) {
          to.lastOpened = copy;
          to.tm.handleOpened(copy, 0, copy.length, ipv4ToU32(ip), 1, monotonicClock.nowUs());
        } else to.tm.handleFrame(copy, ip, 1, monotonicClock.nowUs(), undefined, undefined, opened === false ? 2 : 0);
      });
    };
    const driver = new Driver(monotonicClock, timers);
    drivers.push(driver);
    const deps: TunnelDeps = {
      identity,
      nodeId: () => id,
      udp: {
        send,
        sendBatch: (b) => {
          for (let i = 0; i < b.count; i++) send(b.payload(i), b.ip(i), b.port(i), b.keys?.[i] ?? 0);
        },
        keys,
        ...(opts.routeMtu !== undefined ? { routeMtu: () => opts.routeMtu! } : {}),
      },
      logger: silentLogger(),
      nowUs: () => monotonicClock.nowUs(),
      driver,
      wall: realWallClock,
      rng: new Rng(id),
      resolvePeer: async (peerId): Promise<Result<{ ed25519: Uint8Array; endpoints: { ip: string; port: number }[] }>> => {
        const p = [...nodes.values()].find((n) => n.id === peerId) as (Node & { identity: typeof identity }) | undefined;
        return p ? ok({ ed25519: p.identity.publicKey, endpoints: [{ ip: p.ip, port: 1 }] }) : err('not_found', 'no such node');
      },
      authorize: async (peerId) => {
        node.authorizeCalls++;
        return (opts.authorize ?? (() => true))(peerId) ? ok() : err('connection_failed', `node ${peerId} is not trusted`);
      },
      onPlaintext: (_peer, plaintext) => node.plaintexts.push(new TextDecoder().decode(plaintext)),
      relay: () => null,
      handshakeTimeoutMs: 1500,
      ...(opts.underLoadPerS !== undefined ? { underLoadPerS: opts.underLoadPerS } : {}),
    };
    node.tm = new NoiseSuite(deps);
    driver.onFlush(() => node.tm.flushTx());
    nodes.set(`${ip}:1`, node);
    return node;
  };
  return { a: make(1), b: make(2), close: () => (nodes.forEach((n) => n.tm.close()), drivers.forEach((d) => d.close())) };
}

test('under load the responder answers with a cookie, and the initiator completes the handshake with mac2', async () => {
  const { a, b, close } = network({ underLoadPerS: 0 });
  try {
    const r = await a.tm.ensureSession(b.id);
    assert.ok(r.ok, !r.ok ? r.error.message : '');
    assert.ok(b.sentKinds.includes('cookie'), `responder sent: ${b.sentKinds.join(',')}`);
    assert.ok(b.sentKinds.includes('response'));
    assert.equal(b.authorizeCalls, 1, 'only the initiation with a valid mac2 reached the handshake');
  } finally {
    close();
  }
});

test('the receiver refuses an initiator it does not authorize: no response, no session on either side', async () => {
  const { a, b, close } = network({ authorize: () => false });
  try {
    const r = await a.tm.ensureSession(b.id);
    assert.equal(r.ok, false);
    assert.ok(b.authorizeCalls >= 1, 'the receiver asked');
    assert.equal(b.sentKinds.filter((k) => k === 'response').length, 0, 'and sent nothing back');
    assert.equal(b.tm.peers.get(a.id)?.isUp ?? false, false);
  } finally {
    close();
  }
});

test('with a datapath key table: keys cross at session up and go at close, frames are sealed and opened there, replay is still refused', async () => {
  const { a, b, close } = network({ keyTable: true });
  try {
    const r = await a.tm.ensureSession(b.id);
    assert.ok(r.ok, !r.ok ? r.error.message : '');
    const peerOfB = r.value;
    assert.equal(a.keys!.tx.size, 1);
    await new Promise((res) => setTimeout(res, 20)); // b installs on the initiation, a's keepalive confirms
    assert.equal(b.keys!.tx.size, 1);
    for (const m of ['one', 'two']) assert.ok(a.tm.sendPlaintext(peerOfB, new TextEncoder().encode(m), monotonicClock.nowUs()).ok);
    a.tm.flushTx();
    await new Promise((res) => setTimeout(res, 20));
    assert.deepEqual(b.plaintexts, ['one', 'two']);
    assert.ok(a.keys!.sealed >= 2, 'the table sealed the data frames');
    assert.ok(b.keys!.opened >= 2, 'and the receiving table opened them');
    // The same authentic frame again: the session's replay window refuses it.
    b.tm.handleOpened(b.lastOpened!, 0, b.lastOpened!.length, ipv4ToU32(a.ip), 1, monotonicClock.nowUs());
    assert.deepEqual(b.plaintexts, ['one', 'two']);
    a.tm.closePeer(b.id);
    assert.equal(a.keys!.tx.size, 0, 'closing the peer removes its keys');
    assert.equal(a.keys!.rx.size, 0);
  } finally {
    close();
  }
});

test('data cipher: key tables with AES on both sides agree on AES-256-GCM (installed so, data flows); one side without → ChaCha20-Poly1305', async () => {
  for (const [aes, want] of [
    [() => true, 'aes-256-gcm'],
    [(id: number) => id === 1, 'chacha20-poly1305'],
    [(id: number) => id === 2, 'chacha20-poly1305'],
  ] as const) {
    const { a, b, close } = network({ keyTable: true, aes });
    try {
      const r = await a.tm.ensureSession(b.id);
      assert.ok(r.ok, !r.ok ? r.error.message : '');
      await new Promise((res) => setTimeout(res, 20));
      assert.equal(r.value.current?.cipher, want);
      assert.deepEqual([...a.keys!.ciphers.values()], [want], 'installed in the initiator\'s table with the agreed cipher');
      assert.deepEqual([...b.keys!.ciphers.values()], [want], "and in the responder's");
      for (const m of ['x', 'y']) assert.ok(a.tm.sendPlaintext(r.value, new TextEncoder().encode(m), monotonicClock.nowUs()).ok);
      a.tm.flushTx();
      await new Promise((res) => setTimeout(res, 20));
      assert.deepEqual(b.plaintexts, ['x', 'y'], `data flows on ${want}`);
      assert.ok(b.keys!.opened >= 2);
      assert.equal(a.keys!.jsAeadsMade + b.keys!.jsAeadsMade, 0, 'the direct path is sealed and opened in the tables alone');
    } finally {
      close();
    }
  }
});

test('path MTU discovery waits for the first data: a peer that only exchanges keepalives is never probed', async () => {
  const { a, b, close } = network({ routeMtu: 9000 });
  try {
    const r = await a.tm.ensureSession(b.id);
    assert.ok(r.ok, !r.ok ? r.error.message : '');
    await new Promise((res) => setTimeout(res, 50));
    const peer = r.value;
    assert.equal(peer.pmtu, null, 'no search on an idle session');
    assert.equal(peer.isPmtuDeferred, true);
    assert.equal(peer.pathPlaintextBytes, 1452 - 32);
    assert.ok(a.tm.sendPlaintext(peer, new TextEncoder().encode('data'), monotonicClock.nowUs()).ok);
    const pmtu = (peer as { pmtu: { phase: string } | null }).pmtu; // (assert.equal above narrowed peer.pmtu to null)
    assert.ok(pmtu !== null, 'the first data starts the search');
    assert.equal(pmtu.phase, 'search');
    assert.equal(peer.isPmtuDeferred, false);
  } finally {
    close();
  }
});
