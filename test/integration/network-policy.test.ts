// Network policies between real daemons (issue 15): `policy set` (owner/admin; validated locally first) signs
// the policy into the network's chain; it reaches the members through the membership push; a member's
// send-message (port 1001) then fails with policy_denied naming the rule, while connect to port 7 works.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, explain, waitFor } from './harness.js';

let c: Cluster;
let dir: string;
const POLICY = '{"default":"allow","rules":[{"action":"deny","ports":[1001],"from":"*","to":"*"}]}';

before(async () => {
  c = await Cluster.start('npol', ['own', 'mem']);
  dir = mkdtempSync(join(tmpdir(), 'pi-npol-files-'));
});

after(async () => {
  await c?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('policy set/get; the policy denies port 1001 but allows 7', async () => {
  await c.ok('own', ['network', 'create', 'pol', '--join-rule', 'open']);
  await c.ok('mem', ['network', 'join', 'pol']);
  await waitFor('own to see mem as a member', async () => (await c.ok('own', ['network', 'members', 'pol'])).members.length === 2, 15_000, 50);

  const none = await c.ok('mem', ['policy', 'get', 'pol']);
  assert.equal(none.policy, null);

  // An invalid file never leaves pilotctl: invalid_argument naming file:line:column.
  const badFile = join(dir, 'bad.json');
  writeFileSync(badFile, '{\n  "default": "allow",\n  "rules": [{"action": "maybe"}]\n}\n');
  const bad = await c.json('own', ['policy', 'set', 'pol', badFile]);
  assert.notEqual(bad.code, 0, explain(bad));
  assert.equal(bad.error?.code, 'invalid_argument');
  assert.match(bad.error?.message ?? '', /bad\.json:3:\d+/);

  const file = join(dir, 'policy.json');
  writeFileSync(file, POLICY);
  // A plain member may not set it.
  const denied = await c.json('mem', ['policy', 'set', 'pol', file]);
  assert.equal(denied.error?.code, 'permission_denied', explain(denied));

  const set = await c.ok('own', ['policy', 'set', 'pol', file]);
  assert.equal(set.rules, 1);
  assert.match(set.sha256, /^[0-9a-f]{64}$/);
  // Pushed to the member, which verified it itself.
  await waitFor('mem to hold the policy', async () => (await c.ok('mem', ['policy', 'get', 'pol'])).sha256 === set.sha256, 15_000, 50);
  const got = await c.ok('mem', ['policy', 'get', 'pol']);
  assert.equal(got.policy, POLICY);
  assert.equal(got.default, 'allow');
  const text = await c.text('mem', ['policy', 'get', 'pol']);
  assert.equal(text.code, 0);
  assert.equal(text.stdout.trim(), POLICY);

  const msg = await c.json('mem', ['send-message', 'own', '--data', 'hello']);
  assert.notEqual(msg.code, 0, explain(msg));
  assert.equal(msg.error?.code, 'policy_denied', explain(msg));
  assert.match(msg.error?.message ?? '', /"ports":\[1001\]/, 'the message names the rule');
  // The receiver decided (its RST named the rule) and keeps the record: a policy.denied entry in its audit log.
  await waitFor('own to audit the refusal', async () => {
    const log = await c.ok('own', ['audit']);
    return JSON.stringify(log).includes('policy.denied');
  }, 10_000, 50);

  const echo = await c.ok('mem', ['connect', 'own', '7', '--message', 'still allowed']);
  assert.equal(echo.response, 'still allowed');

  // Clearing (an empty file) opens the port again.
  const empty = join(dir, 'empty.json');
  writeFileSync(empty, '');
  const cleared = await c.ok('own', ['policy', 'set', 'pol', empty]);
  assert.equal(cleared.sha256, null);
  await waitFor('mem to see the policy cleared', async () => (await c.ok('mem', ['policy', 'get', 'pol'])).policy === null, 15_000, 50);
  const ok = await c.ok('mem', ['send-message', 'own', '--data', 'hello again']);
  assert.ok(ok);
});

test('tag and hostname selectors match at enforcement: the owner tags a member, the member signs its hostname', async () => {
  await c.ok('own', ['network', 'create', 'sel', '--join-rule', 'open']);
  await c.ok('mem', ['network', 'join', 'sel']);
  // The member (hostname "mem") signed its registered hostname into the chain; the owner sees it in `members`.
  await waitFor('mem hostname in the chain', async () => {
    const m = (await c.ok('own', ['network', 'members', 'sel'])).members as { network_hostname: string | null }[];
    return m.some((x) => x.network_hostname === 'mem');
  }, 15_000, 50);
  const byTag = join(dir, 'by-tag.json');
  writeFileSync(byTag, '{"default":"allow","rules":[{"action":"deny","ports":[7],"from":"tag:untrusted","to":"*"}]}');
  const set = await c.ok('own', ['policy', 'set', 'sel', byTag]);
  await waitFor('mem to hold the policy', async () => (await c.ok('mem', ['policy', 'get', 'sel'])).sha256 === set.sha256, 15_000, 50);
  // Untagged: allowed. Tagged by the owner: denied by the rule, at the owner's daemon.
  assert.equal((await c.ok('mem', ['connect', 'own', '7', '--message', 'before tag'])).response, 'before tag');
  const denied = await c.json('mem', ['network', 'tag', 'sel', 'mem', '--tags', 'untrusted']);
  assert.equal(denied.error?.code, 'permission_denied', explain(denied));
  const tagged = await c.ok('own', ['network', 'tag', 'sel', 'mem', '--tags', 'untrusted']);
  assert.deepEqual(tagged.tags, ['untrusted']);
  await waitFor('the refusal by tag', async () => (await c.json('mem', ['connect', 'own', '7', '--message', 'x'])).error?.code === 'policy_denied', 15_000, 100);
  const r = await c.json('mem', ['connect', 'own', '7', '--message', 'x']);
  assert.match(r.error?.message ?? '', /tag:untrusted/, explain(r));
  // A hostname selector: deny from "mem" to the owner, on port 7 — after clearing the tag it is the hostname that denies.
  await c.ok('own', ['network', 'tag', 'sel', 'mem', '--tags', '']);
  const byName = join(dir, 'by-name.json');
  writeFileSync(byName, '{"default":"allow","rules":[{"action":"deny","ports":[7],"from":"mem","to":"*"}]}');
  const set2 = await c.ok('own', ['policy', 'set', 'sel', byName]);
  await waitFor('mem to hold the second policy', async () => (await c.ok('mem', ['policy', 'get', 'sel'])).sha256 === set2.sha256, 15_000, 50);
  await waitFor('the refusal by hostname', async () => {
    const x = await c.json('mem', ['connect', 'own', '7', '--message', 'y']);
    return x.error?.code === 'policy_denied' && /"from":"mem"/.test(x.error.message ?? '');
  }, 15_000, 100);
});
