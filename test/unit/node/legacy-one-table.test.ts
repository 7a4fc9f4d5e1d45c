// One connection table for both suites (src/node/streams/connection-table.ts): Noise-transport and v0.5
// connections side by side in one table, told apart by the suite their peer's session speaks — not by id
// ranges. Two tables are wired back to back; each suite's "session" hands the plaintext to the other table.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { ok } from '../../../src/core/result.js';
import { silentLogger } from '../../../src/core/logger.js';
import { monotonicClock, realTimers } from '../../../src/core/clock.js';
import { Rng } from '../../../src/core/rng.js';
import { formatAddr } from '../../../src/wire/address.js';
import { Driver } from '../../../src/node/driver.js';
import { ConnectionTable } from '../../../src/node/streams/connection-table.js';
import { legacyStreams, noiseStreams, type SuiteName } from '../../../src/node/streams/stream-suites.js';
import type { PilotStream } from '../../../src/node/api.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function node(nodeId: number, deliver: (suite: SuiteName, bytes: Uint8Array) => void) {
  const driver = new Driver(monotonicClock, realTimers);
  const rng = new Rng(nodeId);
  const sent = { noise: 0, 'v0.5': 0 };
  const table = new ConnectionTable({
    logger: silentLogger(),
    driver,
    rng,
    addressOf: (id) => formatAddr({ network: 0, node: id }),
    suites: [
      noiseStreams({
        send: (_peer, pt) => {
          sent.noise++;
          deliver('noise', pt.slice());
          return ok();
        },
        maxPlaintextBytes: () => 1420,
        rng,
      }),
      legacyStreams({
        nodeId: () => nodeId,
        sendPlaintext: (_peer, inner) => {
          sent['v0.5']++;
          deliver('v0.5', inner.slice());
          return ok();
        },
        sendDatagram: () => ok(),
      }),
    ],
  });
  return { nodeId, table, driver, sent };
}

function pair() {
  // eslint-disable-next-line prefer-const
  let a: ReturnType<typeof node>, b: ReturnType<typeof node>;
  a = node(101, (suite, bytes) => b.table.handleSegment(a.nodeId, suite, bytes, monotonicClock.nowUs()));
  b = node(202, (suite, bytes) => a.table.handleSegment(b.nodeId, suite, bytes, monotonicClock.nowUs()));
  return { a, b, close: () => [a, b].forEach((n) => (n.table.close(), n.driver.close())) };
}

function readAll(s: PilotStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.once('end', () => resolve(Buffer.concat(chunks)));
    s.once('error', reject);
  });
}

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met within ' + ms + ' ms');
    await sleep(5);
  }
}

test('one table: a Noise and a v0.5 connection to the same peer and port, each through its own suite, byte-exact', async () => {
  const { a, b, close } = pair();
  try {
    const l = b.table.listen(7000);
    assert.ok(l.ok);
    const data = { noise: new Uint8Array(randomBytes(300_000)), 'v0.5': new Uint8Array(randomBytes(300_000)) };
    for (const suite of ['noise', 'v0.5'] as const) {
      const before = { ...a.sent };
      const s = await a.table.dial(b.nodeId, 7000, 3000, suite);
      assert.ok(s.ok, s.ok ? '' : s.error.message);
      const peer = await l.value.accept();
      assert.ok(peer);
      const got = readAll(peer);
      s.value.end(Buffer.from(data[suite]));
      const r = await got;
      assert.equal(sha(r), sha(data[suite]));
      peer.end();
      const other = suite === 'noise' ? 'v0.5' : 'noise';
      // 300 kB is at least 73 segments in either suite; the other session carried at most the earlier
      // connection's closing segments.
      assert.ok(a.sent[suite] - before[suite] >= 73, `${suite} segments went through the ${suite} session`);
      assert.ok(a.sent[other] - before[other] < 5, `the data did not go through the ${other} session`);
    }
    // The passive closer forgets both (the Noise active closer keeps its time-wait).
    await until(() => b.table.size === 0);
  } finally {
    close();
  }
});

test('one table: connections of both suites listed with distinct ids; disconnect(id) and closePeer work on either', async () => {
  const { a, b, close } = pair();
  try {
    const l = b.table.listen(7001);
    assert.ok(l.ok);
    const n = await a.table.dial(b.nodeId, 7001, 3000, 'noise');
    const v = await a.table.dial(b.nodeId, 7001, 3000, 'v0.5');
    assert.ok(n.ok && v.ok);
    const ids = a.table.list().map((c) => c.id);
    assert.equal(new Set(ids).size, 2);
    assert.deepEqual(a.table.peersWithConnections('noise'), [b.nodeId]);
    assert.deepEqual(a.table.peersWithConnections('v0.5'), [b.nodeId]);
    const closed = new Promise<void>((r) => v.value.once('close', () => r()));
    assert.ok(a.table.disconnect(ids[1]!).ok);
    await closed;
    assert.deepEqual(a.table.list().map((c) => c.id), [ids[0]]);
    assert.equal(a.table.disconnect(ids[1]!).ok, false);
    a.table.closePeer(b.nodeId, { code: 'connection_failed', message: 'test' });
    assert.equal(a.table.size, 0);
    await until(() => b.table.size === 0);
    // A SYN to a port nobody listens on is answered with its suite's RST: connection_failed (running out the
    // 3 s would be `timeout`).
    for (const suite of ['noise', 'v0.5'] as const) {
      const r = await a.table.dial(b.nodeId, 4242, 3000, suite);
      assert.equal(!r.ok && r.error.code, 'connection_failed');
    }
  } finally {
    close();
  }
});
