// The compat TLS port in-process (issue 13), with fake targets: the ALPN split, HTTP answers, channel limits, the
// handshake deadline and the ping/dead-channel rule (short intervals here).
import test from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import selfsigned from 'selfsigned';
import WebSocket from 'ws';
import { silentLogger } from '../../../src/core/logger.js';
import type { BeaconChannel, BeaconChannelHandle } from '../../../src/registry/beacon.js';
import { CompatServer, type CompatServerOptions } from '../../../src/registry/compat-server.js';
import { COMPAT_ALPN_REGISTRY, COMPAT_WS_PATH, COMPAT_WS_SUBPROTOCOL } from '../../../src/wire/compat-frames.js';

const pem = selfsigned.generate([{ name: 'commonName', value: 'pilot-rendezvous' }], { keySize: 2048, days: 1, algorithm: 'sha256' });

class FakeTargets {
  readonly attached: { stream: Duplex; remote: { ip: string; port: number } }[] = [];
  readonly channels: { ch: BeaconChannel; received: Uint8Array[]; isClosed: boolean }[] = [];
  readonly registry = {
    attach: (stream: Duplex, remote: { ip: string; port: number }) => {
      this.attached.push({ stream, remote });
      stream.on('data', (d: Buffer) => stream.write(Buffer.concat([Buffer.from('echo:'), d])));
    },
  };
  readonly beacon = {
    attachChannel: (ch: BeaconChannel): BeaconChannelHandle => {
      const rec = { ch, received: [] as Uint8Array[], isClosed: false };
      this.channels.push(rec);
      return {
        receive: (msg) => {
          rec.received.push(Uint8Array.from(msg));
          ch.send(msg); // echo
        },
        closed: () => (rec.isClosed = true),
      };
    },
  };
}

async function start(extra: Partial<CompatServerOptions> = {}): Promise<{ cs: CompatServer; port: number; t: FakeTargets }> {
  const t = new FakeTargets();
  const r = await CompatServer.start({ host: '127.0.0.1', port: 0, cert: pem.cert, key: pem.private, logger: silentLogger(), registry: t.registry, beacon: t.beacon, ...extra });
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  return { cs: r.value, port: r.value.address().port, t };
}

function openWs(port: number, opts: WebSocket.ClientOptions = {}, protocol = COMPAT_WS_SUBPROTOCOL, path = COMPAT_WS_PATH): Promise<WebSocket> {
  const ws = new WebSocket(`wss://127.0.0.1:${port}${path}`, protocol, { rejectUnauthorized: false, perMessageDeflate: false, ...opts });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

const closedOf = (ws: WebSocket) => new Promise<number>((r) => ws.once('close', (code) => r(code)));
const until = async (cond: () => boolean, what: string, ms = 3000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timeout: ' + what);
    await new Promise((r) => setTimeout(r, 10));
  }
};

test('ALPN pilot-registry goes to the registry; no ALPN / http/1.1 to HTTP (404 JSON) and the WebSocket', async () => {
  const { cs, port, t } = await start();
  try {
    const sock = tls.connect({ host: '127.0.0.1', port, ALPNProtocols: [COMPAT_ALPN_REGISTRY], rejectUnauthorized: false });
    await new Promise<void>((r) => sock.once('secureConnect', () => r()));
    assert.equal(sock.alpnProtocol, COMPAT_ALPN_REGISTRY);
    sock.write('ping');
    const echoed = await new Promise<string>((r) => sock.once('data', (d) => r(String(d))));
    assert.equal(echoed, 'echo:ping');
    assert.equal(t.attached.length, 1);
    assert.equal(t.attached[0]!.remote.ip, '127.0.0.1');
    sock.destroy();

    const res = await fetchText(port, '/anything');
    assert.match(res, /^HTTP\/1\.1 404/);
    assert.match(res, /\{"error":"not_found"\}/);

    const ws = await openWs(port);
    assert.equal(ws.protocol, COMPAT_WS_SUBPROTOCOL);
    ws.send(Uint8Array.of(0, 1, 7));
    const back = await new Promise<Buffer>((r) => ws.once('message', (d) => r(d as Buffer)));
    assert.deepEqual([...back], [0, 1, 7]);
    assert.equal(t.channels[0]!.ch.remote.address, '127.0.0.1');
    assert.equal(cs.openChannels, 1);
    ws.close();
    await until(() => t.channels[0]!.isClosed, 'channel closed() after the client closed');
    assert.equal(cs.openChannels, 0);
  } finally {
    await cs.close();
  }
});

/** One HTTPS request on a fresh TLS connection (http/1.1 ALPN); the raw response text. */
function fetchText(port: number, path: string): Promise<string> {
  return new Promise((resolve) => {
    const sock = tls.connect({ host: '127.0.0.1', port, ALPNProtocols: ['http/1.1'], rejectUnauthorized: false }, () =>
      sock.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`),
    );
    let text = '';
    sock.on('data', (d) => (text += d));
    sock.on('error', () => undefined);
    sock.on('close', () => resolve(text));
  });
}

test('wrong subprotocol → 400, wrong path → 404, over the per-IP or total channel limit → 503', async () => {
  const { cs, port } = await start({ maxChannelsPerIp: 2, maxChannels: 3 });
  const open: WebSocket[] = [];
  try {
    await assert.rejects(openWs(port, {}, 'other.v1'), /400/);
    await assert.rejects(openWs(port, {}, COMPAT_WS_SUBPROTOCOL, '/v2/beacon'), /404/);
    open.push(await openWs(port), await openWs(port));
    await assert.rejects(openWs(port), /503/, 'third from one IP');
    assert.equal(cs.stats.channelsOverLimit, 1);
    // Another source IP (127.0.0.2 is loopback too) still gets one, then the total limit bites.
    open.push(await openWs(port, { localAddress: '127.0.0.2' }));
    await assert.rejects(openWs(port, { localAddress: '127.0.0.3' }), /503/, 'over the total');
    open.pop()!.close();
    await until(() => cs.openChannels === 2, 'a slot freed');
    open.push(await openWs(port, { localAddress: '127.0.0.3' }));
  } finally {
    for (const ws of open) ws.terminate();
    await cs.close();
  }
});

test('non-TLS bytes are dropped and counted; a connection that never finishes the upgrade is destroyed at the deadline', async () => {
  const { cs, port } = await start({ handshakeTimeoutMs: 300 });
  try {
    const plain = net.connect(port, '127.0.0.1');
    plain.on('error', () => undefined);
    plain.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise<void>((r) => plain.once('close', () => r()));
    await until(() => cs.stats.tlsErrors === 1, 'tlsClientError counted');

    // Silent TCP: nothing sent at all.
    const silent = net.connect(port, '127.0.0.1');
    silent.on('error', () => undefined);
    const t0 = Date.now();
    await new Promise<void>((r) => silent.once('close', () => r()));
    assert.ok(Date.now() - t0 < 2000, 'closed near the deadline');

    // TLS done, then no HTTP request: destroyed at the deadline too.
    const idle = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
    idle.on('error', () => undefined);
    await new Promise<void>((r) => idle.once('secureConnect', () => r()));
    await new Promise<void>((r) => idle.once('close', () => r()));
    assert.ok(cs.stats.handshakeTimeouts >= 1);

    // A registry connection is not subject to it once attached.
    const reg = tls.connect({ host: '127.0.0.1', port, ALPNProtocols: [COMPAT_ALPN_REGISTRY], rejectUnauthorized: false });
    reg.on('error', () => undefined);
    await new Promise<void>((r) => reg.once('secureConnect', () => r()));
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(reg.destroyed, false);
    reg.destroy();
    // A finished upgrade neither.
    const ws = await openWs(port);
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(ws.readyState, WebSocket.OPEN);
    ws.terminate();
  } finally {
    await cs.close();
  }
});

test('a channel that answers no pings is terminated; one that does stays', async () => {
  // A dead-after long enough that the answering channel's pongs arrive in time on a loaded machine.
  const { cs, port, t } = await start({ pingIntervalMs: 100, deadAfterMs: 1500 });
  try {
    const alive = await openWs(port);
    const mute = await openWs(port, { autoPong: false });
    const muteClosed = closedOf(mute);
    assert.equal(await muteClosed, 1006, 'terminated, no close frame');
    assert.equal(cs.stats.channelsDead, 1);
    await until(() => t.channels.filter((c) => c.isClosed).length === 1, 'the beacon was told');
    assert.equal(alive.readyState, WebSocket.OPEN);
    alive.terminate();
  } finally {
    await cs.close();
  }
});

test('an explicit port in use: connection_failed with the errno', async () => {
  const { cs, port } = await start();
  try {
    const t = new FakeTargets();
    const r = await CompatServer.start({ host: '127.0.0.1', port, cert: pem.cert, key: pem.private, logger: silentLogger(), registry: t.registry, beacon: t.beacon });
    assert.ok(!r.ok);
    assert.equal(r.error.code, 'connection_failed');
    assert.equal(r.error.detail?.errno, 'EADDRINUSE');
  } finally {
    await cs.close();
  }
});
