// The original pilotctl/driver binary protocol served over a NodeApi (src/ipc/legacy-*.ts), driven with request
// bytes built by hand the way the original's pkg/driver builds them.
import test from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveLegacyIpc } from '../../src/ipc/legacy-server.js';
import { LegacyCmd, LegacyIpcFramer, decodeLegacyIpcRequest } from '../../src/ipc/legacy-protocol.js';
import { FakeNode } from '../unit/ipc/fake-node.js';

const u16 = (n: number) => [(n >>> 8) & 0xff, n & 0xff];
const u32 = (n: number) => [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
const addr = (net: number, node: number) => [...u16(net), ...u32(node)];
const ascii = (s: string) => [...Buffer.from(s)];
const frame = (bytes: number[]) => Buffer.from([...u32(bytes.length), ...bytes]);

class Driver {
  private framer = new LegacyIpcFramer();
  private queue: Uint8Array[] = [];
  private waiters: ((m: Uint8Array) => void)[] = [];
  isClosed = false;
  constructor(readonly sock: Socket) {
    sock.on('data', (c) => {
      const r = this.framer.push(c);
      assert.ok(r.ok);
      for (const m of r.value) {
        const w = this.waiters.shift();
        if (w) w(m);
        else this.queue.push(m);
      }
    });
    sock.on('close', () => (this.isClosed = true));
  }
  static async open(path: string): Promise<Driver> {
    const s = connect(path);
    await new Promise((r) => s.once('connect', r));
    return new Driver(s);
  }
  send(bytes: number[]): void {
    this.sock.write(frame(bytes));
  }
  next(): Promise<Uint8Array> {
    const m = this.queue.shift();
    if (m) return Promise.resolve(m);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no reply within 2 s')), 2000);
      this.waiters.push((x) => {
        clearTimeout(t);
        resolve(x);
      });
    });
  }
  async expect(cmd: number): Promise<Uint8Array> {
    const m = await this.next();
    assert.equal(m[0], cmd, `expected 0x${cmd.toString(16)}, got 0x${m[0]!.toString(16)} ${Buffer.from(m.subarray(1)).toString()}`);
    return m.subarray(1);
  }
  async json(cmd: number): Promise<Record<string, unknown>> {
    return JSON.parse(Buffer.from(await this.expect(cmd)).toString()) as Record<string, unknown>;
  }
  async error(): Promise<string> {
    const p = await this.expect(LegacyCmd.Error);
    assert.deepEqual([...p.subarray(0, 2)], [0, 1], 'the original always sends error code 1');
    return Buffer.from(p.subarray(2)).toString();
  }
}

async function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'pilot-legacy-ipc-'));
  const node = new FakeNode();
  const srv = await serveLegacyIpc(node, { socketPath: join(dir, 'pilot.sock') });
  assert.ok(srv.ok);
  const d = await Driver.open(srv.value.socketPath);
  return {
    node,
    d,
    async done() {
      d.sock.destroy();
      await srv.value.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

test('Info returns the original InfoOK document', async () => {
  const { d, done } = await setup();
  d.send([LegacyCmd.Info]);
  const info = await d.json(LegacyCmd.InfoOK);
  assert.equal(info.node_id, 5);
  assert.equal(info.address, '0:0000.0000.0005');
  assert.equal(info.hostname, 'test-node');
  for (const k of ['uptime_secs', 'connections', 'ports', 'peers', 'encrypted_peers', 'authenticated_peers', 'encrypt', 'identity', 'public_key', 'bytes_sent', 'bytes_recv', 'pkts_sent', 'pkts_recv', 'peer_list', 'conn_list']) {
    assert.ok(k in info, `InfoOK has ${k}`);
  }
  await done();
});

test('Dial/Send/Recv/Close against the echo port, as pilotctl ping/bench/connect do', async () => {
  const { d, done } = await setup();
  d.send([LegacyCmd.Dial, ...addr(0, 7), ...u16(7)]);
  const ok = await d.expect(LegacyCmd.DialOK);
  const id = Buffer.from(ok).readUInt32BE(0);
  d.send([LegacyCmd.Send, ...u32(id), ...ascii('hello')]);
  const recv = await d.expect(LegacyCmd.Recv);
  assert.equal(Buffer.from(recv).readUInt32BE(0), id);
  assert.equal(Buffer.from(recv.subarray(4)).toString(), 'hello');
  d.send([LegacyCmd.Close, ...u32(id)]);
  const closed = await d.expect(LegacyCmd.CloseOK);
  assert.equal(Buffer.from(closed).readUInt32BE(0), id);
  d.send([LegacyCmd.Send, ...u32(999), 1]);
  assert.equal(await d.error(), 'connection 999 not found');
  d.send([LegacyCmd.Dial, ...addr(0, 1234), ...u16(7)]);
  assert.match(await d.error(), /resolve/);
  await done();
});

test('Bind pushes Accept (local port first) and Recv; the peer’s end pushes CloseOK', async () => {
  const { node, d, done } = await setup();
  d.send([LegacyCmd.Bind, ...u16(5000)]);
  assert.deepEqual([...(await d.expect(LegacyCmd.BindOK))], u16(5000));
  const dial = await node.dial('5', 5000); // ourselves dialing the bound port
  assert.ok(dial.ok);
  dial.value.on('error', () => {}); // closing the session resets it
  const acc = Buffer.from(await d.expect(LegacyCmd.Accept));
  assert.equal(acc.readUInt16BE(0), 5000);
  const id = acc.readUInt32BE(2);
  assert.deepEqual([...acc.subarray(6, 12)], addr(0, 5));
  assert.equal(acc.readUInt16BE(12), 49152);
  dial.value.write('ping');
  const r = await d.expect(LegacyCmd.Recv);
  assert.equal(Buffer.from(r.subarray(4)).toString(), 'ping');
  d.send([LegacyCmd.Send, ...u32(id), ...ascii('pong')]);
  const back = await new Promise<string>((res) => dial.value.once('data', (b: Buffer) => res(b.toString())));
  assert.equal(back, 'pong');
  dial.value.end();
  const c = await d.expect(LegacyCmd.CloseOK);
  assert.equal(Buffer.from(c).readUInt32BE(0), id);
  d.send([LegacyCmd.Bind, ...u16(5000)]);
  assert.match(await d.error(), /already bound/);
  await done();
});

test('SendTo sends a datagram; answers come back as RecvFrom with both ports', async () => {
  const { node, d, done } = await setup();
  const sock = node.openDatagramSocket(7777);
  assert.ok(sock.ok);
  d.send([LegacyCmd.SendTo, ...addr(0, 5), ...u16(7777), ...ascii('dgram')]);
  const got = await sock.value.recv(2000);
  assert.ok(got);
  assert.equal(Buffer.from(got.data).toString(), 'dgram');
  const r = await sock.value.send('5', got.fromPort, new TextEncoder().encode('reply'));
  assert.ok(r.ok);
  const rf = Buffer.from(await d.expect(LegacyCmd.RecvFrom));
  assert.deepEqual([...rf.subarray(0, 6)], addr(0, 5));
  assert.equal(rf.readUInt16BE(6), 7777);
  assert.equal(rf.readUInt16BE(8), got.fromPort);
  assert.equal(rf.subarray(10).toString(), 'reply');
  await done();
});

test('handshake sub-commands, hostname, visibility and tags map onto NodeApi with the original reply shapes', async () => {
  const { node, d, done } = await setup();
  d.send([LegacyCmd.Handshake, 4]);
  const pending = await d.json(LegacyCmd.HandshakeOK);
  assert.deepEqual(pending, { pending: [{ node_id: 9, public_key: '', justification: 'wants to chat', received_at: 1735689600 }] });
  d.send([LegacyCmd.Handshake, 5]);
  const trusted = (await d.json(LegacyCmd.HandshakeOK)) as { trusted: { node_id: number; mutual: boolean }[] };
  assert.equal(trusted.trusted[0]!.node_id, 7);
  d.send([LegacyCmd.Handshake, 2, ...u32(9)]);
  assert.deepEqual(await d.json(LegacyCmd.HandshakeOK), { status: 'approved', node_id: 9 });
  d.send([LegacyCmd.Handshake, 1, ...u32(7), ...ascii('hi there')]);
  assert.deepEqual(await d.json(LegacyCmd.HandshakeOK), { status: 'sent', node_id: 7 });
  d.send([LegacyCmd.Handshake, 1]);
  assert.equal(await d.error(), 'handshake request: missing node_id');
  d.send([LegacyCmd.Handshake, 9]);
  assert.equal(await d.error(), 'handshake: unknown sub-command 0x09');

  d.send([LegacyCmd.ResolveHostname, ...ascii('agent-alpha')]);
  const res = await d.json(LegacyCmd.ResolveHostnameOK);
  assert.deepEqual(res, { type: 'resolve_hostname_ok', node_id: 7, address: '0:0000.0000.0007', hostname: 'agent-alpha', public: true });
  d.send([LegacyCmd.ResolveHostname]);
  assert.equal(await d.error(), 'resolve_hostname: missing hostname');
  d.send([LegacyCmd.SetHostname, ...ascii('renamed')]);
  assert.equal((await d.json(LegacyCmd.SetHostnameOK)).hostname, 'renamed');
  assert.equal(node.hostname, 'renamed');
  d.send([LegacyCmd.SetVisibility, 1]);
  assert.equal((await d.json(LegacyCmd.SetVisibilityOK)).visibility, 'public');
  d.send([LegacyCmd.SetTags, ...ascii('["a","b"]')]);
  assert.deepEqual((await d.json(LegacyCmd.SetTagsOK)).tags, ['a', 'b']);
  d.send([LegacyCmd.SetTags, ...ascii('["a","b","c","d"]')]);
  assert.equal(await d.error(), 'set_tags: maximum 3 tags allowed');
  d.send([LegacyCmd.Deregister]);
  assert.deepEqual(await d.json(LegacyCmd.DeregisterOK), { type: 'deregister_ok' });
  d.send([0x2a]);
  assert.equal(await d.error(), 'unknown command: 0x2A');
  d.send([LegacyCmd.Bind]);
  assert.equal(await d.error(), 'bind: missing port');
  await done();
});

test('a length over 1 MiB drops the client; the decoder never throws on garbage', async () => {
  const { d, done } = await setup();
  d.sock.write(Buffer.from(u32((1 << 20) + 1)));
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(d.isClosed || d.sock.destroyed || d.sock.readableEnded);
  for (let i = 0; i < 2000; i++) {
    const b = new Uint8Array(Math.floor(Math.random() * 20)).map(() => Math.floor(Math.random() * 256));
    decodeLegacyIpcRequest(b);
  }
  await done();
});
