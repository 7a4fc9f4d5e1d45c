// The compat transport end to end with real processes (issue 13): a rendezvous with its TLS port
// (--compat-addr 127.0.0.1:0) and daemons with --transport tcp reaching it through a TCP forwarder the test can
// cut: trust handshake, streams byte-exact over the WebSocket relay, peers/info fields, the WebSocket cut in the
// middle of a transfer (the transfer still completes byte-exact), a wrong --registry-fingerprint, and a real HTTP
// proxy (Debian's tinyproxy, started and stopped here by PID) with right and wrong credentials. Also auto mode:
// a beacon that gives no UDP answer (a UDP forwarder that drops) moves the node to wss within the documented
// time, and back to udp when UDP answers again, with the stream open throughout.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, readBytes, startRendezvous, waitFor } from './harness.js';
import { startForwarder, type Forwarder } from '../unit/node/compat-fake.js';
import type { PilotStream } from '../../src/node/api.js';

interface Rdv {
  child: ChildProcess;
  registry: string;
  beacon: string;
  compat: string;
  fingerprint: string;
}

const root = mkdtempSync(join(tmpdir(), 'pi-compat-'));
let rdv: Rdv;
let fwd: Forwarder;
let c: Cluster;
const started: ChildProcess[] = [];
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Our rendezvous with its compat port on 127.0.0.1 (harness.startRendezvous: the one ready-line reader). */
async function startRdv(): Promise<Rdv> {
  const r = await startRendezvous({ compatAddr: '127.0.0.1:0', store: join(root, 'registry.json') });
  started.push(r.child);
  if (!r.compat || !r.fingerprint) throw new Error(`ready line without compat: ${JSON.stringify(r)}`);
  return { child: r.child, registry: r.registry, beacon: r.beacon, compat: r.compat, fingerprint: r.fingerprint };
}

const portOf = (hp: string): number => Number(hp.slice(hp.lastIndexOf(':') + 1));

before(async () => {
  rdv = await startRdv();
  fwd = await startForwarder(portOf(rdv.compat));
  c = await Cluster.start('compat', [], { external: { registry: rdv.registry, beacon: rdv.beacon } });
});

after(async () => {
  await c?.close();
  await fwd?.close();
  for (const ch of started) if (ch.exitCode === null && ch.signalCode === null) ch.kill('SIGKILL');
  rmSync(root, { recursive: true, force: true });
});

const tcpFlags = (): string[] => ['--transport', 'tcp', '--compat', `127.0.0.1:${fwd.port}`];

/** A tcp-mode daemon `name`, started unless an earlier test did (so each test also runs alone). */
async function tcpNode(name: string): Promise<void> {
  if (!c.nodes.some((n) => n.name === name)) await c.startDaemon(name, tcpFlags());
}

/** Echo (port 7) `bytes` through a stream and compare. `midway` runs once half the echo is back. */
async function echoExact(from: string, to: string, bytes: number, midway?: () => void | Promise<void>): Promise<number> {
  const cl = await c.client(from);
  const s = await cl.dial(to, 7, { timeoutMs: 15_000 });
  assert.ok(s.ok, !s.ok ? s.error.message : '');
  const stream: PilotStream = s.value;
  const data = randomBytes(bytes);
  const t0 = performance.now();
  const back = readBytes(stream, bytes, 25_000);
  if (midway) {
    let got = 0;
    let isFired = false;
    stream.on('data', (b: Buffer) => {
      got += b.length;
      if (!isFired && got >= bytes / 2) {
        isFired = true;
        void midway();
      }
    });
  }
  stream.write(data);
  const echoed = await back;
  const ms = performance.now() - t0;
  assert.equal(echoed.length, bytes);
  assert.equal(sha(echoed), sha(data), 'echo byte-exact');
  stream.end();
  return ms;
}

test('tcp mode: two daemons register over TLS, trust, stream byte-exact over the WebSocket relay; peers and info say so', async () => {
  await c.startDaemon('a', tcpFlags());
  await c.startDaemon('b', tcpFlags());
  await c.trust('a', 'b', 'compat test');
  const ms = await echoExact('a', 'b', 3 * 1024 * 1024);
  console.log(`# 3 MiB echoed over the WebSocket relay in ${Math.round(ms)} ms`);
  const peers = await c.ok('a', ['peers']);
  const pb = peers.peers.find((p: any) => p.node_id === c.node('b').nodeId);
  assert.equal(pb?.path, 'relay');
  assert.equal(pb?.transport, 'wss');
  const info = await c.ok('a', ['info']);
  assert.equal(info.transport, 'wss');
  assert.equal(info.transport_mode, 'tcp');
  assert.match(info.transport_reason, /--transport tcp/);
  assert.equal(info.compat, `127.0.0.1:${fwd.port}`);
  assert.equal(info.proxy, null);
  assert.equal(info.transport_error, null);
  assert.equal(info.registry_connected, true);
  // Trust on first use: the fingerprint was stored.
  const known = JSON.parse(readFileSync(join(c.homeOf('a'), 'known_rendezvous.json'), 'utf8'));
  assert.deepEqual(known, { [`127.0.0.1:${fwd.port}`]: rdv.fingerprint });
  const text = await c.text('a', ['info']);
  assert.match(text.stdout, /Transport:\s+wss \(mode tcp\)/);
  assert.match((await c.text('a', ['peers'])).stdout, /relay \(wss\)/);
});

test('the WebSocket cut in the middle of a transfer: it reconnects and the transfer completes byte-exact', async () => {
  await tcpNode('a');
  await tcpNode('b');
  await c.trust('a', 'b', 'compat test');
  const accepted = fwd.accepted;
  let cutAt = 0;
  const ms = await echoExact('a', 'b', 4 * 1024 * 1024, () => {
    cutAt = performance.now();
    fwd.cut();
  });
  assert.ok(cutAt > 0, 'the cut happened');
  assert.ok(fwd.accepted > accepted, 'the daemons dialled again');
  console.log(`# 4 MiB echo with the compat connections cut halfway: ${Math.round(ms)} ms`);
  await waitFor('both registered again', async () => (await c.ok('a', ['info'])).registry_connected && (await c.ok('b', ['info'])).registry_connected, 15_000, 200);
});

test('a wrong --registry-fingerprint: transport_error fingerprint_mismatch in info', async () => {
  const wrong = '00:' + rdv.fingerprint.slice(3);
  await c.startDaemon('bad', [...tcpFlags(), '--registry-fingerprint', wrong]);
  const info = await waitFor('transport_error', async () => {
    const i = await c.ok('bad', ['info']);
    return i.transport_error ? i : null;
  });
  assert.equal(info.transport_error.code, 'fingerprint_mismatch');
  assert.ok(info.transport_error.message.includes(wrong) && info.transport_error.message.includes(rdv.fingerprint), info.transport_error.message);
  assert.match(info.transport_error.hint, /--registry-fingerprint/);
  assert.equal(info.registry_connected, false);
  assert.ok(!existsSync(join(c.homeOf('bad'), 'known_rendezvous.json')), 'a pin writes nothing');
  await c.stopDaemon('bad');
});

test('through a real HTTP proxy (tinyproxy, basic auth): connects and streams; wrong credentials give proxy_failed', { skip: !existsSync('/usr/bin/tinyproxy') && 'no /usr/bin/tinyproxy' }, async () => {
  const port = await freePort();
  const conf = join(root, 'tinyproxy.conf');
  writeFileSync(conf, [`Port ${port}`, 'Listen 127.0.0.1', 'Timeout 60', 'MaxClients 100', 'Allow 127.0.0.1', 'BasicAuth user pass', 'LogLevel Warning', ''].join('\n'));
  const tp = spawn('/usr/bin/tinyproxy', ['-d', '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  started.push(tp);
  try {
    await waitFor('tinyproxy to listen', () => canConnect(port), 5000);
    // The proxy carries the compat connections directly to the rendezvous (no forwarder).
    await c.startDaemon('p', ['--transport', 'tcp', '--compat', rdv.compat, '--proxy', `http://user:pass@127.0.0.1:${port}`]);
    const info = await waitFor('p registered via the proxy', async () => {
      const i = await c.ok('p', ['info']);
      return i.registry_connected ? i : null;
    });
    assert.equal(info.proxy, `http://user@127.0.0.1:${port}`);
    assert.equal(info.transport, 'wss');
    await tcpNode('b');
    await c.trust('p', 'b', 'behind a proxy');
    await echoExact('p', 'b', 1024 * 1024);

    await c.startDaemon('q', ['--transport', 'tcp', '--compat', rdv.compat, '--proxy', `http://user:wrong@127.0.0.1:${port}`]);
    const qi = await waitFor('q transport_error', async () => {
      const i = await c.ok('q', ['info']);
      return i.transport_error ? i : null;
    });
    assert.equal(qi.transport_error.code, 'proxy_failed');
    assert.match(qi.transport_error.message, / 40[17] /);
    assert.ok(!qi.transport_error.message.includes('wrong'), 'no password in messages');
    await c.stopDaemon('q');
    await c.stopDaemon('p');
  } finally {
    tp.kill('SIGTERM');
    await new Promise((r) => (tp.exitCode !== null || tp.signalCode !== null ? r(null) : tp.once('exit', r)));
  }
});

// (A direct path after the return needs a NAT that blocks all of the node's UDP, not only the beacon's: netsim's
// udp-unblock cell. On loopback the peer is a tcp-mode node (w), so the path stays relay throughout.)
test('auto: no UDP answer from the beacon → wss within ~3 s; UDP answers again → back to udp; the stream survives both', async () => {
  // A UDP forwarder in front of the beacon that the test can make drop everything.
  const relay = await udpForwarder(portOf(rdv.beacon));
  try {
    relay.isDropping = true;
    await c.startDaemon('u', ['--beacon', `127.0.0.1:${relay.port}`, '--compat', `127.0.0.1:${fwd.port}`]);
    const t0 = performance.now();
    const wss = await waitFor('u on wss', async () => {
      const i = await c.ok('u', ['info']);
      return i.transport === 'wss' ? i : null;
    }, 10_000, 100);
    console.log(`# auto → wss ${Math.round(performance.now() - t0)} ms after daemon start returned`);
    assert.equal(wss.transport_mode, 'auto');
    assert.match(wss.transport_reason, /no UDP answer from the beacon within 3 s/);
    await c.startDaemon('w', tcpFlags());
    await c.trust('u', 'w', 'auto');
    const cl = await c.client('u');
    const s = await cl.dial('w', 7, { timeoutMs: 15_000 });
    assert.ok(s.ok, !s.ok ? s.error.message : '');
    const stream = s.value;
    let streamError: Error | null = null;
    stream.on('error', (e: Error) => (streamError = e));
    const round = async (n: number): Promise<void> => {
      const d = randomBytes(n);
      const back = readBytes(stream, n, 10_000);
      stream.write(d);
      assert.equal(sha(await back), sha(d));
    };
    await round(256 * 1024);
    const pv = (await c.ok('u', ['peers'])).peers.find((p: any) => p.node_id === c.node('w').nodeId);
    assert.equal(pv?.path, 'relay');
    assert.equal(pv?.transport, 'wss');
    relay.isDropping = false;
    const t1 = performance.now();
    await waitFor('u back on udp', async () => (await c.ok('u', ['info'])).transport === 'udp', 20_000, 200);
    console.log(`# UDP answers again → udp after ${Math.round(performance.now() - t1)} ms (reprobe every 15 s)`);
    await round(256 * 1024);
    const pb = (await c.ok('u', ['peers'])).peers.find((x: any) => x.node_id === c.node('w').nodeId);
    assert.equal(pb?.transport, 'udp', 'relay frames on UDP again');
    assert.equal(streamError, null);
    stream.end();
    await c.stopDaemon('u');
    await c.stopDaemon('w');
  } finally {
    relay.close();
  }
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port }, () => {
      sock.destroy();
      resolve(true);
    });
    sock.on('error', () => resolve(false));
  });
}

/** One client ↔ the beacon through a UDP socket of ours; `isDropping` drops both directions. */
async function udpForwarder(targetPort: number): Promise<{ port: number; isDropping: boolean; close(): void }> {
  const front: UdpSocket = createSocket('udp4');
  const back: UdpSocket = createSocket('udp4');
  let client: { address: string; port: number } | null = null;
  const f = { port: 0, isDropping: false, close: () => { front.close(); back.close(); } };
  front.on('message', (m, r) => {
    client = { address: r.address, port: r.port };
    if (!f.isDropping) back.send(m, targetPort, '127.0.0.1');
  });
  back.on('message', (m) => {
    if (!f.isDropping && client) front.send(m, client.port, client.address);
  });
  await new Promise<void>((r) => front.bind(0, '127.0.0.1', () => r()));
  await new Promise<void>((r) => back.bind(0, '127.0.0.1', () => r()));
  f.port = front.address().port;
  return f;
}
