// The compat TLS port of a real pilot-rendezvous process (issue 13): the ready line carries the real port and
// the certificate fingerprint; the registry over TLS + ALPN; a WebSocket channel that registers with an
// authenticated discover (the token from a signed register over the TLS port, as a node without UDP would
// get it) and relays both ways with a UDP node; bad clients (non-TLS, text / non-record messages) are
// dropped and the process survives; the fingerprint is stable across restarts on one store directory.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import WebSocket from 'ws';
import { binCommand } from '../helpers/bins.js';
import { exitStatus, startRendezvous as startHarnessRendezvous } from './harness.js';
import { decodeBeaconMessage, encodeAuthenticatedBeaconMessage, wrapRelay, type BeaconMessage } from '../../src/wire/beacon-message.js';
import {
  CLOSE_PROTOCOL_ERROR,
  COMPAT_ALPN_REGISTRY,
  COMPAT_WS_PATH,
  COMPAT_WS_SUBPROTOCOL,
  decodeRecords,
  encodeRecords,
} from '../../src/wire/compat-frames.js';
import { RegistryFrameDecoder, encodeRegistryFrame, type RegistryMessage } from '../../src/wire/registry-frame.js';
import { challenge } from '../../src/wire/registry-frame.js';
import { fresh, newIdentity, signedRegister, type TestIdentity } from '../unit/registry/helpers.js';

interface Ready {
  registry: string;
  beacon: string;
  compat?: string;
  fingerprint?: string;
}
interface Running {
  child: ChildProcess;
  ready: Ready;
  beaconPort: number;
  compatPort: number;
  stderr: () => string;
}

const portOf = (hp: string) => Number(hp.split(':').pop());

function run(args: string[]): ChildProcess {
  const [cmd, ...pre] = binCommand('pilot-rendezvous');
  return spawn(cmd!, [...pre, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A rendezvous with `compatAddr` and `store` (harness.startRendezvous reads the ready line), as this file uses it. */
async function startRendezvous(opts: { compatAddr: string; store: string }): Promise<Running> {
  const r = await startHarnessRendezvous(opts);
  const ready: Ready = { registry: r.registry, beacon: r.beacon };
  if (r.compat) ready.compat = r.compat;
  if (r.fingerprint) ready.fingerprint = r.fingerprint;
  return { child: r.child, ready, beaconPort: portOf(r.beacon), compatPort: r.compat ? portOf(r.compat) : 0, stderr: r.stderr };
}

async function stop(r: Running): Promise<void> {
  r.child.kill('SIGTERM');
  const ex = await exitStatus(r.child);
  assert.equal(ex.code, 0, `signal ${ex.signal}; ${r.stderr()}`);
}

/** A run to completion: exit code and stdout. */
function runToEnd(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = run(args);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  return new Promise((r) => child.on('exit', (code) => r({ code, stdout, stderr })));
}

/** The registry protocol over TLS with ALPN pilot-registry: one request at a time. */
class TlsRegistryClient {
  private readonly decoder = new RegistryFrameDecoder();
  private readonly replies: RegistryMessage[] = [];
  private wake: (() => void) | null = null;
  private constructor(readonly sock: tls.TLSSocket) {
    sock.on('data', (chunk) => {
      const r = this.decoder.push(chunk);
      assert.ok(r.ok);
      this.replies.push(...r.value.filter((m) => !String(m.type).startsWith('push_')));
      this.wake?.();
    });
    sock.on('error', () => undefined);
  }
  static connect(port: number): Promise<TlsRegistryClient> {
    return new Promise((resolve, reject) => {
      const sock = tls.connect({ host: '127.0.0.1', port, ALPNProtocols: [COMPAT_ALPN_REGISTRY], rejectUnauthorized: false }, () =>
        resolve(new TlsRegistryClient(sock)),
      );
      sock.once('error', reject);
    });
  }
  async request(msg: RegistryMessage): Promise<RegistryMessage> {
    const f = encodeRegistryFrame(msg);
    assert.ok(f.ok);
    this.sock.write(f.value);
    const deadline = Date.now() + 5000;
    while (this.replies.length === 0) {
      if (Date.now() > deadline) throw new Error('no registry reply over TLS');
      await new Promise<void>((r) => {
        const t = setTimeout(r, 100);
        this.wake = () => (clearTimeout(t), r());
      });
    }
    return this.replies.shift()!;
  }
  close(): void {
    this.sock.destroy();
  }
}

/** A beacon channel: a ws client on the compat port; collects decoded datagrams. */
class Channel {
  readonly inbox: BeaconMessage[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private waiters: (() => void)[] = [];
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      assert.ok(isBinary);
      const recs = decodeRecords(new Uint8Array(data as Buffer));
      assert.ok(recs.ok, 'the beacon sends whole records');
      for (const d of recs.value) {
        const m = decodeBeaconMessage(d);
        assert.ok(m.ok);
        this.inbox.push(m.value.kind === 'relay_deliver' ? { ...m.value, payload: Uint8Array.from(m.value.payload) } : m.value);
      }
      for (const w of this.waiters.splice(0)) w();
    });
    this.closed = new Promise((r) => ws.on('close', (code, reason) => r({ code, reason: reason.toString() })));
  }
  static open(port: number, protocol = COMPAT_WS_SUBPROTOCOL): Promise<Channel> {
    const ws = new WebSocket(`wss://127.0.0.1:${port}${COMPAT_WS_PATH}`, protocol, { rejectUnauthorized: false, perMessageDeflate: false });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new Channel(ws)));
      ws.once('error', reject);
    });
  }
  send(...datagrams: Uint8Array[]): void {
    const m = encodeRecords(datagrams);
    assert.ok(m.ok);
    this.ws.send(m.value);
  }
  async next(kind: BeaconMessage['kind'], timeoutMs = 3000): Promise<BeaconMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.inbox.findIndex((m) => m.kind === kind);
      if (i >= 0) return this.inbox.splice(i, 1)[0]!;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('channel: timeout waiting for ' + kind);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => (clearTimeout(t), r()));
      });
    }
  }
}

let counter = 0;
function sealed(m: BeaconMessage, token: Uint8Array): Uint8Array {
  counter = Math.max(counter + 1, Date.now() * 1000);
  const e = encodeAuthenticatedBeaconMessage(m, token, counter);
  assert.ok(e.ok);
  return e.value;
}

/** Register a fresh identity over the TLS registry (our signed register): node id + beacon token. */
async function registerNode(c: TlsRegistryClient): Promise<{ nodeId: number; token: Uint8Array; id: TestIdentity }> {
  const id = newIdentity();
  const r = await c.request(signedRegister(id, '127.0.0.1:4000'));
  assert.equal(r.type, 'register_ok', JSON.stringify(r));
  assert.equal(typeof r.beacon_token, 'string');
  return { nodeId: r.node_id as number, token: new Uint8Array(Buffer.from(r.beacon_token as string, 'base64')), id };
}

/** A node resolving itself (signed): what the registry publishes about it. */
async function resolveSelf(c: TlsRegistryClient, n: { nodeId: number; id: TestIdentity }): Promise<RegistryMessage> {
  const r = await c.request(fresh(n.id, { type: 'resolve', node_id: n.nodeId, requester_id: n.nodeId }, challenge.resolve(n.nodeId, n.nodeId)));
  assert.equal(r.type, 'resolve_ok', JSON.stringify(r));
  return r;
}

function udpNext(sock: dgram.Socket, kind: BeaconMessage['kind'], timeoutMs = 3000): Promise<BeaconMessage> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => (sock.off('message', on), reject(new Error('udp: timeout waiting for ' + kind))), timeoutMs);
    const on = (msg: Buffer) => {
      const m = decodeBeaconMessage(Uint8Array.from(msg));
      if (!m.ok || m.value.kind !== kind) return;
      clearTimeout(t);
      sock.off('message', on);
      resolve(m.value);
    };
    sock.on('message', on);
  });
}

test('compat port: TLS registry (ALPN), a WebSocket channel relaying with a UDP node, bad clients dropped', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pilot-compat-'));
  const rdv = await startRendezvous({ compatAddr: '127.0.0.1:0', store: join(dir, 'registry.json') });
  const udp = dgram.createSocket('udp4');
  const channels: Channel[] = [];
  try {
    assert.ok(rdv.compatPort > 0, `the ready line carries the real port: ${JSON.stringify(rdv.ready)}`);
    assert.match(rdv.ready.fingerprint ?? '', /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    assert.equal(statSync(join(dir, 'compat-tls.pem')).mode & 0o777, 0o600);

    // Registry over TLS: the certificate is the one fingerprinted, ALPN is ours, a register round trip.
    const reg = await TlsRegistryClient.connect(rdv.compatPort);
    assert.equal(reg.sock.alpnProtocol, COMPAT_ALPN_REGISTRY);
    assert.equal(reg.sock.getPeerCertificate().fingerprint256, rdv.ready.fingerprint);
    const a = await registerNode(reg); // on UDP
    const b = await registerNode(reg); // on the channel

    // A on UDP, authenticated discover.
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
    const replyA = udpNext(udp, 'discover_reply');
    udp.send(sealed({ kind: 'discover', nodeId: a.nodeId }, a.token), rdv.beaconPort, '127.0.0.1');
    assert.deepEqual(await replyA, { kind: 'discover_reply', ip: '127.0.0.1', port: udp.address().port });

    // B on a channel: discover over it answers the TCP peer's IPv4 and port 0.
    const chB = await Channel.open(rdv.compatPort);
    channels.push(chB);
    assert.equal(chB.ws.protocol, COMPAT_WS_SUBPROTOCOL);
    chB.send(sealed({ kind: 'discover', nodeId: b.nodeId }, b.token));
    assert.deepEqual(await chB.next('discover_reply'), { kind: 'discover_reply', ip: '127.0.0.1', port: 0 });

    // UDP → channel.
    const toB = wrapRelay(a.nodeId, b.nodeId, new TextEncoder().encode('hello b'));
    assert.ok(toB.ok);
    udp.send(toB.value, rdv.beaconPort, '127.0.0.1');
    const atB = await chB.next('relay_deliver');
    assert.ok(atB.kind === 'relay_deliver');
    assert.equal(atB.senderNodeId, a.nodeId);
    assert.equal(new TextDecoder().decode(atB.payload), 'hello b');

    // Channel → UDP, two frames in one message.
    const got: string[] = [];
    const both = new Promise<void>((resolve) => {
      const on = (msg: Buffer) => {
        const m = decodeBeaconMessage(Uint8Array.from(msg));
        if (m.ok && m.value.kind === 'relay_deliver') got.push(`${m.value.senderNodeId}:${new TextDecoder().decode(m.value.payload)}`);
        if (got.length === 2) (udp.off('message', on), resolve());
      };
      udp.on('message', on);
    });
    const f1 = wrapRelay(b.nodeId, a.nodeId, new TextEncoder().encode('one'));
    const f2 = wrapRelay(b.nodeId, a.nodeId, new TextEncoder().encode('two'));
    assert.ok(f1.ok && f2.ok);
    chB.send(f1.value, f2.value);
    await both;
    assert.deepEqual(got, [`${b.nodeId}:one`, `${b.nodeId}:two`]);

    // The registry publishes A's UDP endpoint, none for the channel node.
    assert.equal((await resolveSelf(reg, a)).observed_addr, `127.0.0.1:${udp.address().port}`);
    assert.equal((await resolveSelf(reg, b)).observed_addr, undefined);

    // A non-TLS client on the TLS port is dropped; the process survives.
    const plain = net.connect(rdv.compatPort, '127.0.0.1');
    plain.on('error', () => undefined);
    plain.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise<void>((r) => plain.on('close', () => r()));
    const garbage = net.connect(rdv.compatPort, '127.0.0.1');
    garbage.on('error', () => undefined);
    garbage.write(Buffer.alloc(4096, 0x16));
    await new Promise<void>((r) => garbage.on('close', () => r()));

    // A text message and a non-record binary message: close 1007.
    const chText = await Channel.open(rdv.compatPort);
    chText.ws.send('hello', { binary: false });
    assert.equal((await chText.closed).code, CLOSE_PROTOCOL_ERROR);
    const chBad = await Channel.open(rdv.compatPort);
    chBad.ws.send(Uint8Array.of(0, 200, 1, 2, 3));
    assert.equal((await chBad.closed).code, CLOSE_PROTOCOL_ERROR);

    // Wrong subprotocol: refused at the upgrade (400); another path: 404.
    await assert.rejects(Channel.open(rdv.compatPort, 'nope'), /400/);
    const ws404 = new WebSocket(`wss://127.0.0.1:${rdv.compatPort}/other`, COMPAT_WS_SUBPROTOCOL, { rejectUnauthorized: false });
    await assert.rejects(new Promise((res, rej) => (ws404.once('open', res), ws404.once('error', rej))), /404/);

    // Still alive and relaying after all that.
    udp.send(toB.value, rdv.beaconPort, '127.0.0.1');
    assert.equal((await chB.next('relay_deliver')).kind, 'relay_deliver');
    const again = await TlsRegistryClient.connect(rdv.compatPort);
    await resolveSelf(again, b);
    again.close();

    // B's channel closes: the beacon forgets B's endpoint, relay to B goes nowhere (and nothing breaks).
    chB.ws.close();
    await chB.closed;
    reg.close();
  } finally {
    for (const c of channels) c.ws.terminate();
    udp.close();
    await stop(rdv);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('compat fingerprint: ready line = --print-fingerprint, stable across a restart on the same store; off leaves it out', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pilot-compat-'));
  const store = join(dir, 'registry.json');
  try {
    // Printed before the first start: the certificate is made then and kept.
    const printed = await runToEnd(['--print-fingerprint', '--store', store]);
    assert.equal(printed.code, 0, printed.stderr);
    assert.match(printed.stdout, /^([0-9A-F]{2}:){31}[0-9A-F]{2}\n$/);
    const fp = printed.stdout.trim();
    const json = await runToEnd(['--print-fingerprint', '--json', '--store', store]);
    assert.deepEqual(JSON.parse(json.stdout), { fingerprint: fp });

    const first = await startRendezvous({ compatAddr: '127.0.0.1:0', store });
    assert.equal(first.ready.fingerprint, fp);
    // An explicit compat address that cannot bind is fatal.
    const clash = await runToEnd(['--registry-addr', '127.0.0.1:0', '--beacon-addr', '127.0.0.1:0', '--compat-addr', `127.0.0.1:${first.compatPort}`, '--store', join(dir, 'other', 'r.json')]);
    assert.equal(clash.code, 1);
    assert.match(clash.stderr, /compat port cannot listen/);
    await stop(first);

    const second = await startRendezvous({ compatAddr: '127.0.0.1:0', store });
    assert.equal(second.ready.fingerprint, fp, 'same certificate after a restart');
    await stop(second);

    const off = await startRendezvous({ compatAddr: 'off', store });
    assert.equal(off.ready.compat, undefined);
    assert.equal(off.ready.fingerprint, undefined);
    await stop(off);

    const half = await runToEnd(['--print-fingerprint', '--tls-cert', join(dir, 'compat-tls.pem')]);
    assert.equal(half.code, 1);
    assert.match(half.stderr, /go together/);
    // The operator's files: the self-signed PEM serves as both.
    const own = await runToEnd(['--print-fingerprint', '--tls-cert', join(dir, 'compat-tls.pem'), '--tls-key', join(dir, 'compat-tls.pem')]);
    assert.equal(own.stdout.trim(), fp);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
