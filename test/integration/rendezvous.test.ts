// Spawns the real pilot-rendezvous process: ready line, SIGKILL durability on the same store, SIGTERM exit,
// beacon over UDP from outside the process.
import test from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exitStatus, startRendezvous as startHarnessRendezvous } from './harness.js';
import { challenge } from '../../src/wire/registry-frame.js';
import { decodeBeaconMessage, encodeBeaconMessage } from '../../src/wire/beacon-message.js';
import { RawClient, fresh, newIdentity, signed } from '../unit/registry/helpers.js';

interface Running {
  child: ChildProcess;
  registryPort: number;
  beaconPort: number;
  stderr: () => string;
}

/** harness.startRendezvous (the one ready-line reader) with more flags, and the ports this file dials. */
async function startRendezvous(args: string[]): Promise<Running> {
  const r = await startHarnessRendezvous({ extraArgs: args });
  return { child: r.child, registryPort: portOf(r.registry), beaconPort: portOf(r.beacon), stderr: r.stderr };
}

const portOf = (hp: string): number => Number(hp.split(':').pop());

test('SIGKILL loses nothing acknowledged: nodes, hostnames, trust and queued handshakes survive', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pilot-rdv-'));
  const store = join(dir, 'registry.json');
  let run = await startRendezvous(['--store', store]);
  try {
    const c = await RawClient.connect(run.registryPort);
    const ids = Array.from({ length: 5 }, () => newIdentity());
    const nodeIds: number[] = [];
    for (const id of ids) {
      const r = await c.request({ type: 'register', listen_addr: '127.0.0.1:9100', public_key: id.publicKeyB64 });
      nodeIds.push(r.node_id as number);
    }
    const [a, b] = [ids[0]!, ids[1]!];
    const [ida, idb] = [nodeIds[0]!, nodeIds[1]!];
    assert.equal((await c.request(fresh(a, { type: 'set_hostname', node_id: ida, hostname: 'durable-a' }, challenge.setHostnameBound(ida, 'durable-a')))).type, 'set_hostname_ok');
    assert.equal((await c.request(signed(b, { type: 'request_handshake', from_node_id: idb, to_node_id: ida, justification: 'survive' }, challenge.requestHandshake(idb, ida)))).type, 'request_handshake_ok');
    assert.equal((await c.request(signed(a, { type: 'report_trust', node_id: ida, peer_id: idb }, challenge.reportTrust(ida, idb)))).type, 'report_trust_ok');
    // The last _ok has arrived: kill -9 right now.
    run.child.kill('SIGKILL');
    await exitStatus(run.child);
    c.close();

    run = await startRendezvous(['--store', store]);
    const c2 = await RawClient.connect(run.registryPort);
    const rh = await c2.request({ type: 'resolve_hostname', hostname: 'durable-a' });
    assert.equal(rh.node_id, ida);
    // Same key → same id; a new key continues the sequence.
    const again = await c2.request({ type: 'register', listen_addr: '127.0.0.1:9100', public_key: ids[3]!.publicKeyB64 });
    assert.equal(again.node_id, nodeIds[3]);
    const fresh1 = await c2.request({ type: 'register', listen_addr: '127.0.0.1:9100', public_key: newIdentity().publicKeyB64 });
    assert.equal(fresh1.node_id, 6);
    const poll = await c2.request(signed(a, { type: 'poll_handshakes', node_id: ida }, challenge.pollHandshakes(ida)));
    assert.deepEqual((poll.requests as Record<string, unknown>[]).map((r) => [r.from_node_id, r.justification]), [[idb, 'survive']]);
    const res = await c2.request(signed(b, { type: 'resolve', node_id: ida, requester_id: idb }, challenge.resolve(idb, ida)));
    assert.equal(res.type, 'resolve_ok');
    c2.close();

    // SIGTERM: graceful, exit code 0, snapshot written.
    run.child.kill('SIGTERM');
    const ex = await exitStatus(run.child);
    assert.equal(ex.code, 0, run.stderr());
    run = await startRendezvous(['--store', store]);
    const c3 = await RawClient.connect(run.registryPort);
    assert.equal((await c3.request({ type: 'resolve_hostname', hostname: 'durable-a' })).node_id, ida);
    c3.close();
  } finally {
    run.child.kill('SIGKILL');
    await exitStatus(run.child);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a corrupt snapshot stops the start with a clear error and is kept aside', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pilot-rdv-'));
  const store = join(dir, 'registry.json');
  writeFileSync(store, '{not json');
  try {
    await assert.rejects(startRendezvous(['--store', store]), /corrupt/);
    assert.equal(readdirSync(dir).filter((f) => f.includes('.corrupt-')).length, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('beacon in the rendezvous process: discover and observed_addr in resolve_ok', async () => {
  const run = await startRendezvous([]);
  const sock = dgram.createSocket('udp4');
  try {
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    const c = await RawClient.connect(run.registryPort);
    const a = newIdentity();
    const reg = await c.request({ type: 'register', listen_addr: `127.0.0.1:${sock.address().port}`, public_key: a.publicKeyB64 });
    const id = reg.node_id as number;
    const reply = new Promise<Buffer>((r) => sock.once('message', (m) => r(m)));
    const d = encodeBeaconMessage({ kind: 'discover', nodeId: id });
    assert.ok(d.ok);
    sock.send(d.value, run.beaconPort, '127.0.0.1');
    const m = decodeBeaconMessage(await reply);
    assert.ok(m.ok);
    assert.deepEqual(m.value, { kind: 'discover_reply', ip: '127.0.0.1', port: sock.address().port });
    const res = await c.request(signed(a, { type: 'resolve', node_id: id, requester_id: id }, challenge.resolve(id, id)));
    assert.equal(res.observed_addr, `127.0.0.1:${sock.address().port}`);
    c.close();
  } finally {
    sock.close();
    run.child.kill('SIGTERM');
    await exitStatus(run.child);
  }
});
