// The compat dial (src/node/compat/dial.ts) against a test-only TLS port and CONNECT proxy: ALPN, trust on first use
// and its mismatch, the pin, the proxy's basic auth and refusal, an unreachable proxy, and the dial's deadline.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monotonicClock, realTimers } from '../../../src/core/clock.js';
import { Driver } from '../../../src/node/driver.js';
import { dialCompat, type CompatDialOptions } from '../../../src/node/compat/dial.js';
import { parseProxyUrl } from '../../../src/node/compat/proxy.js';
import { COMPAT_ALPN_REGISTRY } from '../../../src/wire/compat-frames.js';
import { startFakeCompat, startFakeProxy, type FakeCompat, type FakeProxy } from './compat-fake.js';

describe('compat dial', () => {
  let fake: FakeCompat;
  let proxy: FakeProxy;
  let dir: string;
  const driver = new Driver(monotonicClock, realTimers);
  before(async () => {
    fake = await startFakeCompat();
    proxy = await startFakeProxy('user', 'pass');
    dir = mkdtempSync(join(tmpdir(), 'pi-dial-'));
  });
  after(async () => {
    driver.close();
    await fake.close();
    await proxy.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const opts = (o: Partial<CompatDialOptions> = {}): CompatDialOptions => ({
    target: { host: '127.0.0.1', port: fake.port },
    alpn: [COMPAT_ALPN_REGISTRY],
    proxy: null,
    pinned: null,
    knownFile: join(dir, 'known_rendezvous.json'),
    timeoutMs: 5000,
    after: (ms, fn) => driver.after(ms, fn),
    nowMs: () => Date.now(),
    ...o,
  });

  it('first use stores the fingerprint (0600), the next dial finds it, a changed one is fingerprint_mismatch naming both', async () => {
    const known = join(dir, 'tofu.json');
    const a = await dialCompat(opts({ knownFile: known }));
    assert.ok(a.ok, a.ok ? '' : a.error.message);
    assert.equal(a.value.isFirstUse, true);
    assert.equal(a.value.fingerprint, fake.fingerprint);
    assert.equal(a.value.alpnProtocol, COMPAT_ALPN_REGISTRY);
    // ALPN pilot-registry reaches the echo: the socket is the open registry stream.
    a.value.socket.write('ping');
    const echoed = await new Promise<string>((r) => a.value.socket.once('data', (b) => r(b.toString())));
    assert.equal(echoed, 'ping');
    a.value.socket.destroy();
    assert.deepEqual(JSON.parse(readFileSync(known, 'utf8')), { [`127.0.0.1:${fake.port}`]: fake.fingerprint });
    assert.equal(statSync(known).mode & 0o777, 0o600);

    const b = await dialCompat(opts({ knownFile: known }));
    assert.ok(b.ok);
    assert.equal(b.value.isFirstUse, false);
    b.value.socket.destroy();

    const other = 'AA:' + fake.fingerprint.slice(3);
    writeFileSync(known, JSON.stringify({ [`127.0.0.1:${fake.port}`]: other }));
    const c = await dialCompat(opts({ knownFile: known }));
    assert.ok(!c.ok);
    assert.equal(c.error.code, 'fingerprint_mismatch');
    assert.ok(c.error.message.includes(fake.fingerprint) && c.error.message.includes(other), c.error.message);
    assert.match(c.error.hint ?? '', /--registry-fingerprint/);
  });

  it('a pin wins over the file: right → ok and nothing stored, wrong → fingerprint_mismatch', async () => {
    const known = join(dir, 'pinned.json');
    const a = await dialCompat(opts({ knownFile: known, pinned: fake.fingerprint }));
    assert.ok(a.ok);
    a.value.socket.destroy();
    assert.throws(() => statSync(known), 'a pinned dial writes no file');
    const wrong = '00:' + fake.fingerprint.slice(3);
    const b = await dialCompat(opts({ knownFile: known, pinned: wrong }));
    assert.ok(!b.ok);
    assert.equal(b.error.code, 'fingerprint_mismatch');
    assert.ok(b.error.message.includes(wrong) && b.error.message.includes(fake.fingerprint));
  });

  it('through a CONNECT proxy with basic auth from the URL', async () => {
    const p = parseProxyUrl(`http://user:pass@127.0.0.1:${proxy.port}`);
    assert.ok(p.ok);
    assert.equal(p.value.display, `http://user@127.0.0.1:${proxy.port}`);
    const r = await dialCompat(opts({ proxy: p.value, alpn: ['http/1.1'] }));
    assert.ok(r.ok, r.ok ? '' : r.error.message);
    assert.equal(r.value.alpnProtocol, 'http/1.1');
    r.value.socket.destroy();
    assert.equal(proxy.auths.at(-1), `Basic ${Buffer.from('user:pass').toString('base64')}`);
  });

  it('a proxy that refuses (wrong password: 407) is proxy_failed with its status line', async () => {
    const p = parseProxyUrl(`http://user:nope@127.0.0.1:${proxy.port}`);
    assert.ok(p.ok);
    const r = await dialCompat(opts({ proxy: p.value }));
    assert.ok(!r.ok);
    assert.equal(r.error.code, 'proxy_failed');
    assert.match(r.error.message, /407 Proxy Authentication Required/);
    assert.ok(!r.error.message.includes('nope'), 'the password is never shown');
    const none = parseProxyUrl(`http://127.0.0.1:${proxy.port}`);
    assert.ok(none.ok);
    const r2 = await dialCompat(opts({ proxy: none.value }));
    assert.ok(!r2.ok && r2.error.code === 'proxy_failed');
  });

  it('an unreachable proxy is proxy_failed; an unreachable compat port is connection_failed', async () => {
    const closed = await freePort();
    const p = parseProxyUrl(`http://127.0.0.1:${closed}`);
    assert.ok(p.ok);
    const r = await dialCompat(opts({ proxy: p.value }));
    assert.ok(!r.ok);
    assert.equal(r.error.code, 'proxy_failed');
    assert.match(r.error.message, /ECONNREFUSED/);
    const d = await dialCompat(opts({ target: { host: '127.0.0.1', port: closed } }));
    assert.ok(!d.ok);
    assert.equal(d.error.code, 'connection_failed');
  });

  it('a port that never answers TLS (plain TCP server) times out within the deadline', async () => {
    const sockets: Socket[] = [];
    const srv: Server = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const port = (srv.address() as { port: number }).port;
    const t0 = Date.now();
    const r = await dialCompat(opts({ target: { host: '127.0.0.1', port }, timeoutMs: 300 }));
    assert.ok(!r.ok);
    assert.equal(r.error.code, 'timeout');
    // Without the deadline the dial would wait forever (the server never answers); the bound is loose so a loaded
    // machine does not fail it.
    assert.ok(Date.now() - t0 < 10_000);
    for (const s of sockets) s.destroy();
    srv.close();
  });
});

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
