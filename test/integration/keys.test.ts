// Identity lifecycle through pilotctl with real daemons (issue 14): `init` then `daemon start` uses that identity;
// alpha and beta trust each other, alpha rotates, beta reaches alpha with no new handshake and a message arrives;
// the old key is refused by the registry; then alpha's key is "lost" while beta is offline, alpha takes its node
// back with the recovery key, and beta — started again — follows the statement chain from its lookup.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, explain, runJson, waitFor } from './harness.js';
import { RegistryClient } from '../../src/node/registry-client.js';
import { parseIdentityJson, sign } from '../../src/crypto/identity.js';

let c: Cluster;
let alphaId = 0;
let betaId = 0;
let initKey = '';
let recoveryFile = '';
let recoveryKey = '';

const inboxTexts = async (name: string): Promise<string[]> => {
  const r = await c.json(name, ['inbox']);
  return r.code === 0 ? (r.data.messages as Array<{ data: string }>).map((m) => m.data) : [];
};

const pinOf = async (name: string, nodeId: number): Promise<string | undefined> => {
  const r = await c.json(name, ['trust']);
  return r.code === 0 ? (r.data.trusted as Array<{ node_id: number; public_key?: string }>).find((t) => t.node_id === nodeId)?.public_key : undefined;
};

before(async () => {
  c = await Cluster.start('keys', []);
  const home = c.homeOf('alpha');
  mkdirSync(home, { recursive: true, mode: 0o700 });
  recoveryFile = join(c.root, 'alpha-recovery.json');
  const init = await runJson(['--home', home, 'init', '--recovery-file', recoveryFile, '--registry', c.registry, '--beacon', c.beacon]);
  assert.equal(init.code, 0, explain(init));
  initKey = init.data.public_key;
  assert.match(init.data.recovery_key, /^pilot-recovery-v1:/);
  recoveryKey = init.data.recovery_key;
  assert.equal(statSync(recoveryFile).mode & 0o777, 0o600);
  assert.equal(init.data.config.registry, c.registry);
  // A second init refuses to replace the identity.
  const again = await runJson(['--home', home, 'init']);
  assert.equal(again.code, 1, explain(again));
  assert.equal(again.error?.code, 'already_exists');
  await c.startDaemon('alpha');
  await c.startDaemon('beta');
  alphaId = c.node('alpha').nodeId;
  betaId = c.node('beta').nodeId;
  await c.trust('beta', 'alpha');
});

after(async () => {
  await c?.close();
});

test('init then daemon start: the daemon runs with the identity init made, and the registry learned the recovery key', async () => {
  const info = await c.ok('alpha', ['info']);
  assert.equal(info.public_key, initKey);
  assert.ok(existsSync(join(c.homeOf('alpha'), 'recovery.pub')));
  const sent = await c.json('beta', ['send-message', 'alpha', '--data', 'before rotation']);
  assert.equal(sent.code, 0, explain(sent));
  await waitFor('message before rotation', async () => (await inboxTexts('alpha')).includes('before rotation'), 20_000);
});

test('rotate-key: beta follows without a handshake, a message arrives, the old key is refused', async () => {
  const oldIdentity = join(c.root, 'alpha-old-identity.json');
  copyFileSync(join(c.homeOf('alpha'), 'identity.json'), oldIdentity);
  const r = await c.json('alpha', ['rotate-key']);
  assert.equal(r.code, 0, explain(r));
  assert.equal(r.data.node_id, alphaId);
  assert.equal(r.data.old_public_key, initKey);
  assert.equal(r.data.by, 'local');
  assert.equal(r.data.via, 'daemon');
  const newKey: string = r.data.new_public_key;
  assert.notEqual(newKey, initKey);
  // The daemon answers with the new key (and pilotctl still verifies it: identity.pub was republished).
  assert.equal((await c.ok('alpha', ['info'])).public_key, newKey);
  const onDisk = parseIdentityJson(readFileSync(join(c.homeOf('alpha'), 'identity.json'), 'utf8'));
  assert.ok(onDisk.ok);
  assert.equal(Buffer.from(onDisk.value.publicKey).toString('base64'), newKey);

  // beta's pin moved (the registry pushed the statement; beta verified it against its pin).
  await waitFor('beta to move its pin', async () => (await pinOf('beta', alphaId)) === newKey, 20_000);
  const sent = await c.json('beta', ['send-message', 'alpha', '--data', 'after rotation']);
  assert.equal(sent.code, 0, explain(sent) + '\n' + c.logTail('beta'));
  await waitFor('message after rotation', async () => (await inboxTexts('alpha')).includes('after rotation'), 20_000);
  // No new handshake happened: nothing pending on either side, trust still mutual.
  assert.deepEqual((await c.ok('alpha', ['pending'])).pending, []);
  assert.deepEqual((await c.ok('beta', ['pending'])).pending, []);
  const back = await c.json('alpha', ['send-message', 'beta', '--data', 'reply with the new key']);
  assert.equal(back.code, 0, explain(back) + '\n' + c.logTail('alpha'));

  // The old key: the registry refuses it, even as a new node.
  const old = parseIdentityJson(readFileSync(oldIdentity, 'utf8'));
  assert.ok(old.ok);
  const rc = new RegistryClient({ registryAddr: c.registry, sign: (m) => sign(old.value, m) });
  try {
    assert.ok((await rc.connect()).ok);
    const reg = await rc.register('127.0.0.1:1', old.value.publicKey);
    assert.equal(reg.ok, false);
    assert.equal(!reg.ok && reg.error.code, 'key_retired');
  } finally {
    await rc.close();
  }
  // A daemon started with the old identity runs unregistered and says why.
  const oldHome = c.homeOf('old-alpha');
  mkdirSync(oldHome, { recursive: true, mode: 0o700 });
  copyFileSync(oldIdentity, join(oldHome, 'identity.json'));
  const started = await c.json('old-alpha', ['daemon', 'start', '--registry', c.registry, '--beacon', c.beacon, '--listen', '127.0.0.1:0']);
  try {
    assert.equal(started.code, 1, explain(started));
    assert.equal(started.error?.code, 'key_retired', explain(started));
    assert.match(started.error?.message ?? '', /rotated out of node/, explain(started));
  } finally {
    await c.json('old-alpha', ['daemon', 'stop', '--timeout', '5s']);
  }
});

test('lost key: rotate-key --recovery-file with the daemon stopped; an offline peer catches up from its lookup', async () => {
  await c.stopDaemon('beta');
  await c.stopDaemon('alpha');
  rmSync(join(c.homeOf('alpha'), 'identity.json')); // the key is lost
  // Without --node-id the recovery path cannot know which node to take back.
  const noId = await c.json('alpha', ['rotate-key', '--recovery-file', recoveryFile]);
  assert.equal(noId.code, 1, explain(noId));
  assert.equal(noId.error?.code, 'invalid_argument');
  const r = await c.json('alpha', ['rotate-key', '--recovery-file', recoveryFile, '--node-id', String(alphaId), '--registry', c.registry]);
  assert.equal(r.code, 0, explain(r));
  assert.equal(r.data.by, 'recovery');
  assert.equal(r.data.via, 'registry');
  const recovered: string = r.data.new_public_key;
  // daemon start uses the recovered identity: same node id, same hostname.
  const a = await c.startDaemon('alpha', c.node('alpha').flags);
  assert.equal(a.nodeId, alphaId);
  assert.equal((await c.ok('alpha', ['info'])).public_key, recovered);
  // beta was offline during the rotation: its pin is the previous key until it looks alpha up.
  const b = await c.startDaemon('beta', c.node('beta').flags);
  assert.equal(b.nodeId, betaId);
  assert.notEqual(await pinOf('beta', alphaId), recovered);
  const sent = await c.json('beta', ['send-message', 'alpha', '--data', 'after recovery', '--timeout', '30s']);
  assert.equal(sent.code, 0, explain(sent) + '\n' + c.logTail('beta'));
  await waitFor('message after recovery', async () => (await inboxTexts('alpha')).includes('after recovery'), 20_000);
  assert.equal(await pinOf('beta', alphaId), recovered);
  assert.deepEqual((await c.ok('alpha', ['pending'])).pending, []);
});

test('rotate-key --recovery-key through the running daemon: the pushed recovery statement is verified with the learned recovery key', async () => {
  const before = (await c.ok('alpha', ['info'])).public_key;
  const r = await c.json('alpha', ['rotate-key', '--recovery-key', recoveryKey]);
  assert.equal(r.code, 0, explain(r));
  assert.equal(r.data.by, 'recovery');
  assert.equal(r.data.via, 'daemon');
  assert.equal(r.data.old_public_key, before);
  await waitFor('beta to follow the recovery rotation', async () => (await pinOf('beta', alphaId)) === r.data.new_public_key, 20_000);
  const sent = await c.json('beta', ['send-message', 'alpha', '--data', 'after recovery rotation', '--timeout', '30s']);
  assert.equal(sent.code, 0, explain(sent) + '\n' + c.logTail('beta'));
  await waitFor('message after recovery rotation', async () => (await inboxTexts('alpha')).includes('after recovery rotation'), 20_000);
  // A malformed recovery key is a usage error, caught before the daemon is asked.
  const bad = await c.json('alpha', ['rotate-key', '--recovery-key', 'nope']);
  assert.equal(bad.code, 2, explain(bad));
  assert.equal(bad.error?.code, 'invalid_argument');
});
