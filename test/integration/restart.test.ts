// Restarts: a daemon restart and a rendezvous restart (with --store, same port) keep identity (node id,
// address, public key), trust, pending requests and the inbox. A registry outage (SIGKILL) does not break an
// open stream, and the daemons re-register when the rendezvous comes back.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, readBytes, sleep, waitFor } from './harness.js';
import type { PilotClient } from '../../src/sdk/client.js';

let c: Cluster;
const id = (n: string): number => c.node(n).nodeId;

before(async () => {
  c = await Cluster.start('rst', ['pia', 'quin', 'rho'], { store: true });
  await c.trust('pia', 'quin', 'long-lived pair');
});

after(async () => {
  await c?.close();
});

interface Snapshot {
  node_id: number;
  address: string;
  public_key: string;
  trusted: Array<[number, boolean]>;
  pending: Array<[number, string]>;
  inbox: string[];
}

async function snapshot(name: string): Promise<Snapshot> {
  const [i, t, p, m] = await Promise.all([c.ok(name, ['info']), c.ok(name, ['trust']), c.ok(name, ['pending']), c.ok(name, ['inbox'])]);
  return {
    node_id: i.node_id,
    address: i.address,
    public_key: i.public_key,
    trusted: t.trusted.map((x: any) => [x.node_id, x.mutual]).sort(),
    pending: p.pending.map((x: any) => [x.node_id, x.justification]).sort(),
    inbox: m.messages.map((x: any) => x.data).sort(),
  };
}

async function registryConnected(name: string): Promise<boolean> {
  const r = await c.json(name, ['info']);
  return r.code === 0 && r.data.registry_connected === true;
}

test('a daemon restart keeps identity, trust, pending requests and the inbox', async () => {
  await c.ok('rho', ['handshake', 'quin', 'rho would like to join']);
  await c.ok('pia', ['send-message', 'quin', '--data', 'kept across restarts']);
  await waitFor('quin to have the request and the message', async () => {
    const s = await snapshot('quin');
    return s.pending.length === 1 && s.inbox.length === 1;
  });
  const before = await snapshot('quin');
  assert.deepEqual(before.trusted, [[id('pia'), true]]);
  assert.deepEqual(before.pending, [[id('rho'), 'rho would like to join']]);
  assert.deepEqual(before.inbox, ['kept across restarts']);

  await c.restartDaemon('quin');
  const after1 = await snapshot('quin');
  assert.deepEqual(after1, before);
  // Trust still works end to end, in both directions (the restarted node speaks first here; the last test
  // covers the other order).
  assert.equal((await c.ok('quin', ['connect', 'pia', '7', '--message', 'yes'])).response, 'yes');
  assert.equal((await c.ok('pia', ['connect', 'quin', '7', '--message', 'still friends'])).response, 'still friends');
});

test('a rendezvous restart (--store, SIGKILL) keeps ids, trust and queued requests; daemons re-register', async () => {
  const before = { pia: await snapshot('pia'), quin: await snapshot('quin') };
  await c.killRendezvous('SIGKILL');
  await waitFor('the daemons to notice the outage', async () => !(await registryConnected('pia')), 20_000, 200);
  const t0 = performance.now();
  await c.startRendezvous();
  await waitFor('pia and quin to re-register', async () => (await registryConnected('pia')) && (await registryConnected('quin')), 30_000, 100);
  console.log(`# rendezvous restart → both daemons registered again: ${Math.round(performance.now() - t0)} ms`);
  assert.deepEqual(await snapshot('pia'), before.pia);
  assert.deepEqual(await snapshot('quin'), before.quin);
  // Hostname lookups, trust-gated resolve and new data all work against the restarted registry.
  assert.equal((await c.ok('pia', ['find', 'quin'])).node_id, id('quin'));
  // A fresh tunnel needs the registry to resolve quin for pia: drop the old one by restarting pia.
  await c.restartDaemon('pia');
  assert.equal(c.node('pia').nodeId, before.pia.node_id);
  assert.equal((await c.ok('pia', ['connect', 'quin', '7', '--message', 'via the new registry'])).response, 'via the new registry');
  // The queued request is still answerable: approve it now.
  await c.ok('quin', ['approve', String(id('rho'))]);
  await waitFor('rho to see mutual trust', async () => (await c.ok('rho', ['trust'])).trusted.some((t: any) => t.node_id === id('quin') && t.mutual));
});

test('a registry outage does not break an open stream; the daemons re-register when it returns', async () => {
  const cp: PilotClient = await c.client('pia');
  const s = await cp.dial('quin', 7);
  assert.ok(s.ok, !s.ok ? s.error.message : '');
  const stream = s.value;
  let streamError: Error | null = null;
  stream.on('error', (e: Error) => (streamError = e));
  const roundTrip = async (i: number): Promise<void> => {
    const msg = Buffer.from(`chunk-${i}-`.padEnd(1000, 'x'));
    const back = readBytes(stream, msg.length, 5000);
    stream.write(msg);
    assert.equal((await back).toString(), msg.toString(), `echo ${i}`);
  };
  await roundTrip(0);

  await c.killRendezvous('SIGKILL');
  // Keep talking for a while with the registry gone (the daemons notice and start reconnecting meanwhile).
  const tOutage = Date.now();
  let i = 1;
  while (Date.now() - tOutage < 4000) {
    await roundTrip(i++);
    await sleep(100);
  }
  assert.equal(await registryConnected('pia'), false, 'pia noticed the outage');
  assert.equal(streamError, null);
  console.log(`# ${i - 1} echo round trips on an open stream during a 4 s registry outage`);

  const t0 = performance.now();
  await c.startRendezvous();
  await waitFor('both daemons to re-register', async () => (await registryConnected('pia')) && (await registryConnected('quin')), 30_000, 100);
  console.log(`# rendezvous back → both daemons re-registered: ${Math.round(performance.now() - t0)} ms`);
  await roundTrip(i++);
  stream.end();
  assert.equal(streamError, null);
  // New work after the outage.
  assert.equal((await c.ok('pia', ['send-message', 'quin', '--data', 'after the outage'])).ack, true);
});

// Runs alone too: node --test --test-name-pattern restarted dist/test/integration/restart.test.js
test('a node reaches a peer that restarted (new endpoint) without waiting for the peer to speak first', async () => {
  await c.ok('pia', ['ping', 'quin', '--count', '1']);
  await c.restartDaemon('quin');
  const t0 = performance.now();
  const r = await c.json('pia', ['connect', 'quin', '7', '--message', 'are you back?', '--timeout', '8s']);
  console.log(`# pia → restarted quin: exit ${r.code} after ${Math.round(performance.now() - t0)} ms`);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.data.response, 'are you back?');
});
