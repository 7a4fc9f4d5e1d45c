// Custom networks between real daemons (issue 15): membership is a chain of signed changes the daemons verify
// themselves, and membership is trust — members reach each other without a handshake; a kick ends that at once
// (pushed) and the kicked node's next tunnel is refused by the receiving daemon. Non-members, forged changes,
// unknown networks and admin actions by members are refused with stable codes.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { Cluster, explain, waitFor } from './harness.js';
import { generateIdentity, sign, toBase64 } from '../../src/crypto/identity.js';
import { makeChange } from '../../src/crypto/network-chain.js';
import { RegistryFrameDecoder, encodeRegistryFrame, type RegistryMessage } from '../../src/wire/registry-frame.js';

let c: Cluster;
const id = (name: string): number => c.node(name).nodeId;

before(async () => {
  c = await Cluster.start('nets', ['own', 'mem', 'out']);
});

after(async () => {
  await c?.close();
});

/** One request on a fresh registry connection (what any client, or a compromised registry's friend, can send). */
function registryRequest(msg: RegistryMessage): Promise<RegistryMessage> {
  const [host, port] = c.registry.split(':');
  return new Promise((resolve, reject) => {
    const s = connect(Number(port), host!);
    const dec = new RegistryFrameDecoder();
    const f = encodeRegistryFrame(msg);
    if (!f.ok) return reject(new Error(f.error.message));
    s.on('connect', () => s.write(f.value));
    s.on('data', (chunk) => {
      const m = dec.push(chunk);
      if (m.ok && m.value.length > 0) {
        s.destroy();
        resolve(m.value[0]!);
      }
    });
    s.on('error', reject);
    setTimeout(() => {
      s.destroy();
      reject(new Error('registry did not answer'));
    }, 10_000).unref();
  });
}

test('create → invite → accept → reach without handshake → broadcast → kick → refused within 1 s', async () => {
  const created = await c.ok('own', ['network', 'create', 'lab', '--join-rule', 'invite']);
  assert.equal(created.name, 'lab');
  assert.equal(created.role, 'owner');
  assert.ok(created.network_id > 0);
  assert.match(created.address, new RegExp(`^${created.network_id}:`), 'a member has an address in the network');

  // A member cannot be added by joining an invite-only network without an invite.
  const early = await c.json('mem', ['network', 'join', 'lab']);
  assert.equal(early.code, 1, explain(early));
  assert.equal(early.error?.code, 'permission_denied');

  const inv = await c.ok('own', ['network', 'invite', 'lab', 'mem']);
  assert.deepEqual(inv, { network_id: created.network_id, name: 'lab', node_id: id('mem'), status: 'invited' });
  const invites = await c.ok('mem', ['network', 'invites']);
  assert.deepEqual(invites.invites.map((n: any) => n.name), ['lab']);
  const joined = await c.ok('mem', ['network', 'accept', 'lab']);
  assert.equal(joined.role, 'member');
  assert.equal(joined.address, `${created.network_id}:${joined.address.split(':')[1]}`);
  assert.ok(!joined.address.startsWith('0:'));

  // Both sides see the member (pushed to the owner; verified from the chain by each).
  await waitFor('own to see mem as a member', async () => (await c.ok('own', ['network', 'members', 'lab'])).members.length === 2, 10_000, 20);
  const members = await c.ok('mem', ['network', 'members', 'lab']);
  assert.deepEqual(members.members.map((m: any) => [m.node_id, m.role]), [[id('own'), 'owner'], [id('mem'), 'member']]);

  // Reach without a handshake: nobody trusts anybody, yet both directions work.
  assert.deepEqual((await c.ok('own', ['trust'])).trusted, []);
  assert.deepEqual((await c.ok('mem', ['trust'])).trusted, []);
  const e1 = await c.ok('mem', ['connect', 'own', '7', '--message', 'member to owner']);
  assert.equal(e1.response, 'member to owner');
  const e2 = await c.ok('own', ['connect', 'mem', '7', '--message', 'owner to member']);
  assert.equal(e2.response, 'owner to member');

  // Broadcast: one copy to each other member, a result per member.
  const b = await c.ok('own', ['broadcast', 'lab', '--data', 'standup in 5']);
  assert.equal(b.sent, 1, JSON.stringify(b));
  assert.deepEqual(b.results.map((r: any) => [r.node_id, r.status]), [[id('mem'), 'delivered']]);
  const inbox = await c.ok('mem', ['inbox']);
  assert.ok(inbox.messages.some((m: any) => String(m.data ?? m.content ?? '').includes('standup in 5') || JSON.stringify(m).includes('standup in 5')), JSON.stringify(inbox).slice(0, 400));

  // Datagram broadcast: one datagram per member to --port, a result each ('sent': datagrams are not acknowledged).
  const mc = await c.client('mem');
  const sock = await mc.openDatagramSocketAsync(1234);
  assert.ok(sock.ok, sock.ok ? '' : sock.error.message);
  const bd = await c.ok('own', ['broadcast', 'lab', '--datagram', '--port', '1234', '--data', 'ping all']);
  assert.deepEqual([bd.datagram, bd.port, bd.sent, bd.failed], [true, 1234, 1, 0], JSON.stringify(bd));
  assert.deepEqual(bd.results.map((r: any) => [r.node_id, r.status]), [[id('mem'), 'sent']]);
  const dg = await sock.value.recv(5_000);
  assert.equal(dg && Buffer.from(dg.data).toString(), 'ping all');
  assert.equal(dg?.fromPort ?? 1234, 1234);
  sock.value.close();
  const noPort = await c.json('own', ['broadcast', 'lab', '--datagram', '--data', 'x']);
  assert.equal(noPort.error?.code, 'invalid_argument', explain(noPort));

  // The member rotates its key: its daemon signs the new key into the chain with the old one (rekey), so the
  // owner admits it at once — no re-invite, still no handshake.
  const rot = await c.ok('mem', ['rotate-key']);
  assert.ok(rot);
  await waitFor('the owner to hold mem\'s new key', async () => {
    const m = (await c.ok('own', ['network', 'members', 'lab'])).members as { node_id: number; public_key: string }[];
    const mine = (await c.ok('mem', ['info'])) as { public_key?: string };
    return m.some((x) => x.node_id === id('mem') && (mine.public_key === undefined || x.public_key === mine.public_key) && x.public_key !== undefined);
  }, 15_000, 50);
  await waitFor('reach after the rotation', async () => (await c.json('mem', ['connect', 'own', '7', '--message', 'rotated'])).data?.response === 'rotated', 15_000, 100);
  const back = await c.ok('own', ['connect', 'mem', '7', '--message', 'owner to rotated member']);
  assert.equal(back.response, 'owner to rotated member');

  // A member may not kick (or invite): permission_denied, and nothing changes.
  const denied = await c.json('mem', ['network', 'kick', 'lab', 'own']);
  assert.equal(denied.code, 1, explain(denied));
  assert.equal(denied.error?.code, 'permission_denied');
  const denied2 = await c.json('mem', ['network', 'invite', 'lab', 'out']);
  assert.equal(denied2.error?.code, 'permission_denied');

  // Kick: the push reaches the kicked node within 1 s, and the owner refuses its next tunnel itself.
  const cm = await c.client('mem');
  const t0 = performance.now();
  await c.ok('own', ['network', 'kick', 'lab', 'mem']);
  await waitFor('mem to learn it was kicked', async () => {
    const r = await cm.network({ op: 'role', name: 'lab' });
    return !r.ok && r.error.code === 'not_found';
  }, 5000, 5);
  const revokedMs = performance.now() - t0;
  assert.ok(revokedMs < 1000, `kick reached the member in ${revokedMs.toFixed(0)} ms`);
  const after = await c.json('mem', ['connect', 'own', '7', '--message', 'still there?', '--timeout', '3s']);
  assert.equal(after.code, 1, explain(after));
  // The refusal at the receiving daemon itself (the registry lying that the kicked node may find it) is
  // test/sim/node/networks.test.ts.
});

test('a non-member is refused; unknown networks are not_found', async () => {
  await c.ok('own', ['network', 'create', 'closed', '--join-rule', 'invite']);
  const r = await c.json('out', ['connect', 'own', '7', '--message', 'let me in', '--timeout', '3s']);
  assert.equal(r.code, 1, explain(r));
  assert.equal(r.error?.code, 'connection_failed');
  for (const args of [['network', 'join', 'no-such-net'], ['network', 'members', 'no-such-net'], ['network', 'accept', 'no-such-net'], ['broadcast', 'no-such-net', '--data', 'x']]) {
    const x = await c.json('out', args);
    assert.equal(x.code, 1, explain(x));
    assert.equal(x.error?.code, 'not_found', args.join(' '));
  }
  const bad = await c.json('out', ['network', 'create', 'Bad_Name']);
  assert.equal(bad.error?.code, 'invalid_argument');
});

test('a forged membership change is refused by the registry (the members would refuse it too: unit tests)', async () => {
  const list = await c.ok('own', ['network', 'list']);
  const closed = list.networks.find((n: any) => n.name === 'closed');
  const chain = await (await c.client('own')).network({ op: 'members', name: 'closed' });
  assert.ok(chain.ok);
  // An "invite by the owner" signed with a key that is not the owner's, for a node that registered that key.
  const forger = generateIdentity();
  const fake = makeChange({ head: 'x'.repeat(64), seq: 0 }, { op: 'invite', by: id('own'), node_id: id('out'), key: toBase64(forger.publicKey), ts: 1 }, (m) => sign(forger, m));
  const r = await registryRequest({ type: 'network_change', node_id: id('out'), network_id: closed.network_id, change: fake as unknown as RegistryMessage });
  assert.equal(r.type, 'error');
  assert.ok(r.code === 'permission_denied' || r.code === 'invalid_argument', JSON.stringify(r));
  // Same, at the right place in the chain: the signature decides.
  const g = await registryRequest({ type: 'get_network', node_id: id('out'), network_id: closed.network_id });
  assert.equal(g.type, 'error', 'an unsigned read of an invite-only network is refused');
  const members = await c.ok('own', ['network', 'members', 'closed']);
  assert.equal(members.members.length, 1);
  // The original's join_network without a signed change: refused, with a pointer to the docs.
  const legacy = await registryRequest({ type: 'join_network', node_id: id('out'), network_id: closed.network_id, token: '', inviter_id: id('own') });
  assert.equal(legacy.type, 'error');
});

test('open and token networks; daemon start --networks joins at start; leave, rename, promote, delete', async () => {
  await c.ok('own', ['network', 'create', 'pub']);
  await c.ok('own', ['network', 'create', 'club', '--join-rule', 'token', '--token', 's3cret']);
  const wrong = await c.json('out', ['network', 'join', 'club', '--token', 'guess']);
  assert.equal(wrong.error?.code, 'permission_denied', explain(wrong));
  const j = await c.ok('out', ['network', 'join', 'club', '--token', 's3cret']);
  assert.equal(j.role, 'member');
  await c.ok('own', ['network', 'promote', 'club', 'out']);
  await waitFor('out to be admin', async () => (await c.ok('out', ['network', 'role', 'club'])).role === 'admin', 5000, 20);
  await c.ok('out', ['network', 'leave', 'club']);
  assert.equal((await c.json('out', ['network', 'role', 'club'])).error?.code, 'not_found');
  await c.ok('own', ['network', 'rename', 'club', 'club-2']);
  assert.equal((await c.ok('own', ['network', 'role', 'club-2'])).role, 'owner');
  await c.ok('own', ['network', 'delete', 'club-2']);
  assert.ok(!(await c.ok('own', ['network', 'list'])).networks.some((n: any) => n.name === 'club-2'));

  await c.startDaemon('late', ['--networks', 'pub']);
  await waitFor('late to be a member of pub', async () => {
    const r = await c.json('late', ['network', 'role', 'pub']);
    return r.code === 0 && r.data.role === 'member';
  }, 15_000, 100);
  const e = await c.ok('late', ['connect', 'own', '7', '--message', 'joined at start']);
  assert.equal(e.response, 'joined at start');
});

test('networks survive a rendezvous restart (--store): chains reload, members stay members', async () => {
  const s = await Cluster.start('nets-store', ['so', 'sm'], { store: true });
  try {
    await s.ok('so', ['network', 'create', 'kept', '--join-rule', 'invite']);
    await s.ok('so', ['network', 'invite', 'kept', 'sm']);
    await s.ok('sm', ['network', 'accept', 'kept']);
    await s.killRendezvous('SIGTERM');
    await s.startRendezvous();
    // Daemons re-register on their own; the registry's chain (reloaded and re-verified) still lists both.
    await waitFor('members after restart', async () => {
      const r = await s.json('sm', ['network', 'members', 'kept']);
      return r.code === 0 && r.data.members.length === 2;
    }, 30_000, 200);
    const list = await s.ok('so', ['network', 'list']);
    assert.equal(list.networks.find((n: any) => n.name === 'kept')?.role, 'owner');
    const e = await s.ok('sm', ['connect', 'so', '7', '--message', 'after restart']);
    assert.equal(e.response, 'after restart');
  } finally {
    await s.close();
  }
});
