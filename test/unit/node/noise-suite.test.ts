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

/** Real timers that keep the test's event loop alive (realTimers unref: a daemon's socket keeps it alive). */
const timers: Timers = { set: (ms, fn) => setTimeout(fn, ms), clear: (h) => clearTimeout(h as NodeJS.Timeout), soon: (fn) => void setImmediate(fn) };

interface Node {
  id: number;
  ip: string;
  tm: NoiseSuite;
  sentKinds: string[];
  authorizeCalls: number;
}

function network(opts: { underLoadPerS?: number; authorize?: (id: number) => boolean } = {}) {
  const nodes = new Map<string, Node>();
  const drivers: Driver[] = [];
  const make = (id: number): Node => {
    const identity = generateIdentity();
    const ip = `10.0.0.${id}`;
    const node = { id, ip, sentKinds: [], authorizeCalls: 0, identity } as unknown as Node & { identity: typeof identity };
    const send = (data: Uint8Array, toIp: string, toPort: number) => {
      node.sentKinds.push(noiseFrameKind(data) ?? 'other');
      const copy = data.slice();
      setImmediate(() => nodes.get(`${toIp}:${toPort}`)?.tm.handleFrame(copy, ip, 1, monotonicClock.nowUs()));
    };
    const driver = new Driver(monotonicClock, timers);
    drivers.push(driver);
    const deps: TunnelDeps = {
      identity,
      nodeId: () => id,
      udp: {
        send,
        sendBatch: (b) => {
          for (let i = 0; i < b.count; i++) send(b.payload(i), b.ip(i), b.port(i));
        },
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
      onPlaintext: () => {},
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
