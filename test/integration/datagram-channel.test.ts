// PilotClient datagram sockets over the binary datagram channel (src/ipc/datagram-frames.ts) against real
// daemons: 64-byte datagrams both ways, the errors a send reports (at once, confirmed, and fire-and-forget
// through a RESULT frame), a hostile frame closing only that channel, and close() unbinding the port.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { DatagramSocket } from '../../src/node/api.js';
import type { PilotClient } from '../../src/sdk/client.js';
import { openDatagramChannel } from '../../src/ipc/client.js';
import { FRAME_RESULT, FrameDecoder, FRAME_RECV, type ChannelFrame } from '../../src/ipc/datagram-frames.js';
import { Cluster, sleep, waitFor } from './harness.js';

let c: Cluster;
let ca: PilotClient;
let cb: PilotClient;
let alphaId = 0;
let betaId = 0;

/** What a channel socket adds to DatagramSocket (src/sdk/client.ts ClientDatagramSocket). */
type ChannelSocket = DatagramSocket & { sendErrors: number; lastSendError: { code: string; detail?: Record<string, unknown> } | null };

before(async () => {
  c = await Cluster.start('dgramchan', ['alpha', 'beta']);
  alphaId = c.node('alpha').nodeId;
  betaId = c.node('beta').nodeId;
  await c.trust('alpha', 'beta');
  ca = await c.client('alpha');
  cb = await c.client('beta');
});

after(async () => {
  ca?.close();
  cb?.close();
  await c?.close();
});

async function open(client: PilotClient, port: number): Promise<ChannelSocket> {
  const r = await client.openDatagramSocketAsync(port);
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  return r.value as ChannelSocket;
}

test('64-byte datagrams go both ways through the channel, with sender addresses', async () => {
  const sa = await open(ca, 7100);
  const sb = await open(cb, 7200);
  try {
    assert.equal(typeof sa.sendErrors, 'number', 'PilotClient datagram sockets are channel sockets');
    // beta echoes everything back to its sender.
    let echoed = 0;
    void (async () => {
      for (;;) {
        const d = await sb.recv();
        if (!d) return;
        assert.equal(d.fromNodeId, alphaId);
        assert.equal(d.fromPort, 7100);
        assert.equal(d.port, 7200);
        assert.equal(d.from, `0:0000.0000.${alphaId.toString(16).padStart(4, '0')}`);
        const r = await sb.send(String(d.fromNodeId), d.fromPort, d.data);
        assert.ok(r.ok, r.ok ? '' : r.error.message);
        echoed++;
      }
    })();
    const total = 2000;
    const seen = new Set<number>();
    void (async () => {
      for (;;) {
        const d = await sa.recv();
        if (!d) return;
        assert.equal(d.fromNodeId, betaId);
        assert.equal(d.fromPort, 7200);
        assert.equal(d.data.length, 64);
        seen.add(Buffer.from(d.data).readUInt32BE(0));
      }
    })();
    for (let i = 0; i < total; i += 50) {
      let last: Promise<unknown> = Promise.resolve();
      for (let k = i; k < i + 50; k++) {
        const msg = Buffer.alloc(64, 0xab);
        msg.writeUInt32BE(k, 0);
        last = sa.send('beta', 7200, msg);
      }
      const r = (await last) as { ok: boolean };
      assert.ok(r.ok);
      await sleep(1);
    }
    // Unreliable by design, but loopback at this pace loses little: most must make the round trip.
    await waitFor('echoes', () => seen.size >= total * 0.9 || null, 10_000);
    assert.ok(echoed >= seen.size);
    assert.equal(sa.sendErrors, 0);
    assert.equal(sb.sendErrors, 0);
    // info().datagrams counts what reached the bound ports, and where any were dropped (none at this pace).
    const ib = await cb.info();
    assert.ok(ib.ok);
    const dg = ib.value.datagrams!;
    assert.ok(dg.received >= echoed, `beta's daemon counted ${dg.received} received, ${echoed} echoed`);
    assert.equal(dg.dropped_queue_full, 0);
    assert.equal(dg.datapath_rx_dropped, 0);
    assert.ok(dg.datapath_rx_packets >= dg.received);
    assert.equal(sb.dropped, 0);
  } finally {
    sa.close();
    sb.close();
  }
});

test('send errors: too large at once, from the node on a confirmed send, and fire-and-forget via RESULT', async () => {
  const sa = await open(ca, 7101);
  const sb = await open(cb, 7201);
  try {
    // Over the frame's limit: refused before it leaves the process.
    const huge = await sa.send('beta', 7201, new Uint8Array(70_000));
    assert.equal(huge.ok, false);
    if (!huge.ok) assert.equal(huge.error.code, 'invalid_argument');
    // Unknown name: the first send to a ref is confirmed, so it fails like the JSON datagram_send.
    const unknown = await sa.send('no-such-node', 7201, Buffer.from('x'));
    assert.equal(unknown.ok, false);
    if (!unknown.ok) assert.equal(unknown.error.code, 'not_found');
    // Over the tunnel's limit on a first (confirmed) send: the daemon's invalid_argument, synchronously.
    const big = await sa.send(String(betaId), 7201, new Uint8Array(1500));
    assert.equal(big.ok, false);
    if (!big.ok) assert.equal(big.error.code, 'invalid_argument');
    // Confirm 'beta', then an oversized fire-and-forget send: ok now, reported on the channel.
    assert.ok((await sa.send('beta', 7201, Buffer.alloc(64, 1))).ok);
    assert.ok((await sb.recv(5000)) !== null);
    const fire = await sa.send('beta', 7201, new Uint8Array(1500));
    assert.ok(fire.ok, 'a fire-and-forget send resolves once queued');
    await waitFor('the RESULT frame', () => sa.sendErrors >= 1 || null, 5000);
    assert.equal(sa.lastSendError?.code, 'invalid_argument');
    assert.equal(sa.lastSendError?.detail?.to, 'beta');
    assert.equal(sa.lastSendError?.detail?.port, 7201);
    // The channel still works, and the next send to that ref is confirmed again.
    assert.ok((await sa.send('beta', 7201, Buffer.alloc(64, 2))).ok);
    const d = await sb.recv(5000);
    assert.ok(d);
    assert.equal(d.data[0], 2);
  } finally {
    sa.close();
    sb.close();
  }
});

test('a hostile frame closes only that channel with an error frame; close() unbinds the port', async () => {
  const target = ca.target;
  const ch = await openDatagramChannel(target, 7102);
  assert.ok(ch.ok, ch.ok ? '' : ch.error.message);
  const frames: ChannelFrame[] = [];
  const dec = new FrameDecoder([FRAME_RECV, FRAME_RESULT], (f) => frames.push(f));
  const closed = new Promise<void>((resolve) => ch.value.socket.once('close', () => resolve()));
  ch.value.socket.on('data', (b: Buffer) => void dec.push(b));
  ch.value.socket.on('end', () => ch.value.socket.end()); // allowHalfOpen: the daemon ended, we finish too
  ch.value.socket.resume();
  ch.value.socket.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
  await closed;
  assert.equal(frames.length, 1);
  const f = frames[0]!;
  assert.ok(f.kind === FRAME_RESULT && f.seq === 0 && f.error !== null);
  assert.equal(f.error.code, 'invalid_argument');
  // The daemon is fine, and the port was released with the channel.
  assert.ok((await ca.info()).ok);
  const again = await waitFor('port 7102 free again', async () => {
    const r = await ca.openDatagramSocketAsync(7102);
    return r.ok ? r.value : null;
  }, 5000);
  // A second open on a bound port is refused, and close() frees it.
  const dup = await ca.openDatagramSocketAsync(7102);
  assert.equal(dup.ok, false);
  if (!dup.ok) assert.equal(dup.error.code, 'already_exists');
  again.close();
  const third = await waitFor('port 7102 free after close()', async () => {
    const r = await ca.openDatagramSocketAsync(7102);
    return r.ok ? r.value : null;
  }, 5000);
  third.close();
});
