// The compat link (src/node/compat/link.ts) against a test-only TLS + WebSocket port (compat-fake.ts), with short
// timings: registration by discover, batching per flush, datagrams presented as from the beacon, periodic
// discovers, reconnect after a cut, half-open detection, protocol errors, the send-buffer cap.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monotonicClock, realTimers } from '../../../src/core/clock.js';
import { Rng } from '../../../src/core/rng.js';
import { silentLogger } from '../../../src/core/logger.js';
import { Driver } from '../../../src/node/driver.js';
import { dialCompat } from '../../../src/node/compat/dial.js';
import { CompatLink, type LinkState } from '../../../src/node/compat/link.js';
import type { CompatTiming } from '../../../src/nat/index.js';
import { encodeBeaconMessage, RELAY_HEADER_BYTES, writeRelayHeader, BEACON_RELAY_DELIVER } from '../../../src/wire/beacon-message.js';
import { startFakeCompat, startForwarder, type FakeCompat, type Forwarder } from './compat-fake.js';

const BEACON = { ip: '127.0.0.9', port: 9001 };
const FAST: Partial<CompatTiming> = {
  linkPingIntervalUs: 100_000,
  linkSilentUs: 400_000,
  linkDiscoverIntervalUs: 300_000,
  linkBackoffInitialUs: 50_000,
  linkBackoffMaxUs: 200_000,
  linkDialTimeoutUs: 2_000_000,
};

function relayFrame(from: number, to: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(RELAY_HEADER_BYTES + payload.length);
  writeRelayHeader(out, 0, from, to);
  out.set(payload, RELAY_HEADER_BYTES);
  return out;
}

async function until(what: string, fn: () => boolean, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!fn()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('compat link', () => {
  let fake: FakeCompat;
  let fwd: Forwarder;
  let dir: string;
  const driver = new Driver(monotonicClock, realTimers);
  before(async () => {
    fake = await startFakeCompat();
    fwd = await startForwarder(fake.port);
    dir = mkdtempSync(join(tmpdir(), 'pi-link-'));
  });
  after(async () => {
    driver.close();
    await fwd.close();
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function makeLink(timing: Partial<CompatTiming> = FAST): { link: CompatLink; got: Array<{ ip: string; port: number; bytes: Uint8Array }>; states: LinkState[] } {
    const got: Array<{ ip: string; port: number; bytes: Uint8Array }> = [];
    const states: LinkState[] = [];
    const target = { host: '127.0.0.1', port: fwd.port };
    const link: CompatLink = new CompatLink({
      driver,
      rng: new Rng(7),
      logger: silentLogger(),
      target,
      dial: () =>
        dialCompat({ target, alpn: ['http/1.1'], proxy: null, pinned: fake.fingerprint, knownFile: join(dir, 'k.json'), timeoutMs: 2000, after: (ms, fn) => driver.after(ms, fn), nowMs: () => Date.now() }),
      encodeDiscover: () => {
        const m = encodeBeaconMessage({ kind: 'discover', nodeId: 7 });
        return m.ok ? m.value : null;
      },
      onDatagrams: (b) => {
        for (let i = 0; i < b.count; i++) got.push({ ip: b.ip(i), port: b.port(i), bytes: Uint8Array.from(b.payload(i)) });
      },
      beacon: BEACON,
      onStateChange: (s) => states.push(s),
      timing,
    });
    return { link, got, states };
  }

  it('registers by discover, batches a flush into one message, and hands reflected frames on as from the beacon', async () => {
    const { link, got, states } = makeLink();
    assert.equal(link.push(Uint8Array.of(5, 1)), false, 'dropped while down');
    link.open();
    await until('registered', () => link.isRegistered);
    assert.deepEqual(states, ['connecting', 'open', 'registered']);
    assert.ok(fake.discovers.includes(7));
    const sentBefore = link.stats.messagesSent;
    const frames = Array.from({ length: 50 }, (_, i) => relayFrame(7, 8, new Uint8Array(1200).fill(i)));
    for (const f of frames) assert.ok(link.push(f));
    link.flush();
    assert.equal(link.stats.messagesSent - sentBefore, 1, '50 frames of 1.2 KB: one message');
    await until('50 reflected', () => got.length >= 50);
    for (let i = 0; i < 50; i++) {
      assert.equal(got[i]!.ip, BEACON.ip);
      assert.equal(got[i]!.port, BEACON.port);
      assert.equal(got[i]!.bytes[0], BEACON_RELAY_DELIVER);
      assert.equal(Buffer.from(got[i]!.bytes).readUInt32BE(1), 8);
      assert.deepEqual(got[i]!.bytes.subarray(5), frames[i]!.subarray(RELAY_HEADER_BYTES));
    }
    assert.ok(got.every((g) => g.bytes[0] !== 0x02), 'discover replies stay in the link');
    // Periodic discovers.
    const n = fake.discovers.length;
    await until('two more discovers', () => fake.discovers.length >= n + 2, 3000);
    link.close();
    assert.equal(link.state, 'closed');
  });

  it('reconnects after the connection is cut, with backoff, and registers again', async () => {
    const { link } = makeLink();
    link.open();
    await until('registered', () => link.isRegistered);
    const accepted = fwd.accepted;
    const t0 = Date.now();
    fwd.cut();
    await until('connecting', () => !link.isOpen, 2000);
    await until('registered again', () => link.isRegistered, 5000);
    assert.ok(fwd.accepted > accepted);
    assert.ok(Date.now() - t0 < 5000, `back within the backoff (${Date.now() - t0} ms)`);
    assert.equal(link.stats.drops, 1);
    link.close();
  });

  it('detects a half-open connection within linkSilentUs + linkPingIntervalUs and reconnects', async () => {
    const { link } = makeLink();
    link.open();
    await until('registered', () => link.isRegistered);
    fwd.blackhole();
    const t0 = Date.now();
    await until('half-open noticed', () => link.stats.halfOpen === 1, 5000);
    const ms = Date.now() - t0;
    // The bound is 500 ms with these timings; the slack covers a loaded machine (the default bound is 20 s).
    assert.ok(ms <= 400 + 100 + 1500, `within the bound (${ms} ms)`);
    assert.equal(link.lastError?.code, 'timeout');
    // Registered again on a new connection, and the error cleared with it (the old state may still read
    // registered for a moment after the half-open was noticed).
    await until('registered again, error cleared', () => link.isRegistered && link.lastError === null, 5000);
    link.close();
  });

  it('a message that is not whole records closes the channel (1007) and the link comes back', async () => {
    const { link } = makeLink();
    link.open();
    await until('registered', () => link.isRegistered);
    const opens = link.stats.opens;
    for (const ch of fake.channels) ch.send(Uint8Array.of(0));
    await until('protocol error', () => link.stats.protocolErrors === 1);
    await until('reopened', () => link.stats.opens > opens && link.isRegistered, 3000);
    link.close();
  });

  it('drops when the send buffer is over the cap, and a dial error is kept as lastError', async () => {
    const { link } = makeLink({ ...FAST, linkMaxBufferedBytes: 20 });
    link.open();
    await until('registered', () => link.isRegistered);
    link.push(relayFrame(7, 8, new Uint8Array(100)));
    link.flush();
    assert.equal(link.stats.droppedFull, 1);
    link.close();

    const target = { host: '127.0.0.1', port: fwd.port };
    const bad = new CompatLink({
      driver,
      rng: new Rng(1),
      logger: silentLogger(),
      target,
      dial: () => dialCompat({ target, alpn: ['http/1.1'], proxy: null, pinned: '00:' + fake.fingerprint.slice(3), knownFile: join(dir, 'k.json'), timeoutMs: 2000, after: (ms, fn) => driver.after(ms, fn), nowMs: () => Date.now() }),
      encodeDiscover: () => null,
      onDatagrams: () => undefined,
      beacon: BEACON,
      timing: FAST,
    });
    bad.open();
    await until('an error', () => bad.lastError !== null);
    assert.equal(bad.lastError?.code, 'fingerprint_mismatch');
    bad.close();
  });
});
