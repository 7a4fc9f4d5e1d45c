// pilotctl audit / audit export / audit verify against real daemons, and policy validate / policy test on files
// (issue 15). The daemon records daemon.started/stopping and trust changes; the export verifies offline with
// the node's identity.pub, and any edit, deletion or reordering fails naming the record.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, explain, runJson, runPilotctl, waitFor, type JsonRun } from './harness.js';

let c: Cluster;

function data(r: JsonRun): any {
  assert.equal(r.code, 0, explain(r));
  assert.equal(r.error, null, explain(r));
  return r.data;
}

function failure(r: JsonRun, code: string, exit = 1): any {
  assert.equal(r.code, exit, explain(r));
  assert.equal(r.stdout.trim(), '', explain(r));
  assert.equal(r.error?.code, code, explain(r));
  assert.equal(typeof r.error?.hint, 'string');
  return r.error;
}

before(async () => {
  c = await Cluster.start('audit', ['alpha', 'beta']);
});

after(async () => {
  await c?.close();
});

test('the daemon records daemon.started and trust changes; audit --json / text / --since / --limit', async () => {
  const alpha = c.node('alpha');
  const beta = c.node('beta');
  data(await c.json('alpha', ['handshake', String(beta.nodeId), 'audit test']));
  await waitFor('beta sees the request', async () => (await c.ok('beta', ['pending'])).pending.some((p: any) => p.node_id === alpha.nodeId), 20_000);
  data(await c.json('beta', ['approve', String(alpha.nodeId)]));
  const a = data(await c.json('beta', ['audit']));
  const kinds = a.entries.map((e: any) => e.kind);
  assert.equal(kinds[0], 'audit.created', JSON.stringify(kinds));
  assert.ok(kinds.includes('daemon.started'), JSON.stringify(kinds));
  const approved = a.entries.find((e: any) => e.kind === 'trust.approved');
  assert.ok(approved, JSON.stringify(kinds));
  assert.equal(approved.data.node_id, alpha.nodeId);
  assert.equal(approved.data.by, 'local');
  assert.equal(a.total, a.entries.length);
  assert.match(a.path, /audit\.log$/);
  const info = data(await c.json('beta', ['info']));
  assert.equal(a.public_key, info.public_key);

  const limited = data(await c.json('beta', ['audit', '--limit', '1']));
  assert.equal(limited.entries.length, 1);
  assert.equal(limited.entries[0].seq, a.entries.at(-1).seq);
  const future = data(await c.json('beta', ['audit', '--since', '2999-01-01T00:00:00Z']));
  assert.equal(future.entries.length, 0);
  const recent = data(await c.json('beta', ['audit', '--since', '1h']));
  assert.equal(recent.entries.length, a.entries.length);
  const bad = await c.json('beta', ['audit', '--since', 'yesterday']);
  failure(bad, 'invalid_argument', 2);

  const t = await c.text('beta', ['audit']);
  assert.equal(t.code, 0, explain(t));
  assert.match(t.stdout, /#\d+\s+trust\.approved\s+by=local node_id=\d+/);

  data(await c.json('beta', ['untrust', String(alpha.nodeId)]));
  const b = data(await c.json('beta', ['audit']));
  assert.equal(b.entries.at(-1).kind, 'trust.revoked');
});

test('audit export → audit verify (offline, with identity.pub); edits, deletions, reordering fail naming the record', async () => {
  const home = c.homeOf('beta');
  const file = join(c.root, 'beta-audit.jsonl');
  const ex = data(await c.json('beta', ['audit', 'export', file]));
  assert.equal(ex.path, file);
  assert.ok(ex.records >= 4, JSON.stringify(ex));
  const key = join(home, 'identity.pub');
  // Offline: no --home, no daemon involved.
  const v = data(await runJson(['audit', 'verify', file, '--public-key', key]));
  assert.equal(v.valid, true);
  assert.equal(v.records, ex.records);
  assert.equal(v.public_key_source, 'flag');
  assert.equal(v.node_id, c.node('beta').nodeId);
  const vh = data(await runJson(['audit', 'verify', file]));
  assert.equal(vh.public_key_source, 'header');
  const text = await runPilotctl(['audit', 'verify', file]);
  assert.equal(text.code, 0, explain(text));
  assert.match(text.stdout, /^valid: \d+ records/);

  const lines = readFileSync(file, 'utf8').split('\n').slice(0, -1);
  const write = (name: string, ls: string[]): string => {
    const p = join(c.root, name);
    writeFileSync(p, ls.map((l) => l + '\n').join(''));
    return p;
  };
  // An edited record (trust.approved's node id).
  const i = lines.findIndex((l) => l.includes('"kind":"trust.approved"'));
  assert.ok(i > 0);
  const edited = [...lines];
  edited[i] = edited[i]!.replace(/"node_id":(\d+)/, (_m, n) => `"node_id":${Number(n) + 1}`);
  let e = failure(await runJson(['audit', 'verify', write('edited.jsonl', edited)]), 'verify_failed');
  assert.equal(e.detail.failure.reason, 'edited');
  assert.equal(e.detail.failure.line, i + 1);
  assert.match(e.message, /was edited/);
  // A middle record deleted.
  const missing = [...lines];
  missing.splice(2, 1);
  e = failure(await runJson(['audit', 'verify', write('missing.jsonl', missing)]), 'verify_failed');
  assert.equal(e.detail.failure.reason, 'missing');
  assert.equal(e.detail.failure.seq, 1);
  // The last record deleted: the signed head counts it.
  e = failure(await runJson(['audit', 'verify', write('truncated.jsonl', lines.slice(0, -1))]), 'verify_failed');
  assert.equal(e.detail.failure.reason, 'truncated');
  // Two records swapped.
  const swapped = [...lines];
  [swapped[2], swapped[3]] = [swapped[3]!, swapped[2]!];
  e = failure(await runJson(['audit', 'verify', write('swapped.jsonl', swapped)]), 'verify_failed');
  assert.equal(e.detail.failure.reason, 'reordered');
  // The right export, the wrong node's key.
  e = failure(await runJson(['audit', 'verify', file, '--public-key', join(c.homeOf('alpha'), 'identity.pub')]), 'verify_failed');
  assert.equal(e.detail.failure.reason, 'wrong_key');
  // No such file; a bad key.
  failure(await runJson(['audit', 'verify', join(c.root, 'nope.jsonl')]), 'not_found');
  failure(await runJson(['audit', 'verify', file, '--public-key', 'not-a-key']), 'invalid_argument');
});

test('a restart records daemon.stopping and daemon.started, and the chain continues', async () => {
  const before = data(await c.json('alpha', ['audit']));
  await c.restartDaemon('alpha');
  const afterRestart = data(await c.json('alpha', ['audit']));
  const added = afterRestart.entries.slice(before.entries.length).map((e: any) => e.kind);
  assert.deepEqual(added.slice(0, 2), ['daemon.stopping', 'daemon.started'], JSON.stringify(added));
  // The raw log verifies too (torn writes would be listed).
  const raw = data(await runJson(['audit', 'verify', join(c.homeOf('alpha'), 'audit.log'), '--public-key', join(c.homeOf('alpha'), 'identity.pub')]));
  assert.equal(raw.valid, true);
  assert.equal(raw.source, 'log');
});

test('policy validate / policy test on files', async () => {
  const good = join(c.root, 'policy.json');
  writeFileSync(
    good,
    JSON.stringify({ default: 'allow', rules: [{ action: 'deny', ports: [1001], from: '*', to: '*' }, { action: 'allow', from: 'role:admin', to: 'tag:gpu' }, { action: 'deny', from: '*', to: 'tag:gpu' }] }, null, 2) + '\n',
  );
  const v = data(await runJson(['policy', 'validate', good]));
  assert.equal(v.valid, true);
  assert.equal(v.rules.length, 3);
  assert.equal(v.default, 'allow');
  const deny = data(await runJson(['policy', 'test', good, '--from', 'agent-a', '--to', 'agent-b', '--port', '1001']));
  assert.equal(deny.allow, false);
  assert.equal(deny.rule_index, 0);
  assert.equal(deny.rule, '{"action":"deny","ports":[1001],"from":"*","to":"*"}');
  const svc = data(await runJson(['policy', 'test', good, '--from', '12', '--to', 'agent-b', '--port', 'dataexchange']));
  assert.equal(svc.allow, false);
  const admin = data(await runJson(['policy', 'test', good, '--from', '3', '--from-role', 'admin', '--to', 'gpu-1', '--to-tags', 'gpu', '--port', '7']));
  assert.equal(admin.allow, true);
  assert.equal(admin.rule_index, 1);
  const other = data(await runJson(['policy', 'test', good, '--from', '4', '--to', 'gpu-1', '--to-tags', 'gpu,big', '--port', '7']));
  assert.equal(other.allow, false);
  assert.equal(other.rule_index, 2);
  const dflt = data(await runJson(['policy', 'test', good, '--from', '4', '--to', '5', '--port', '7']));
  assert.equal(dflt.allow, true);
  assert.equal(dflt.rule, 'default: allow');
  const t = await runPilotctl(['policy', 'test', good, '--from', 'agent-a', '--to', 'agent-b', '--port', '1001']);
  assert.equal(t.code, 0, explain(t));
  assert.match(t.stdout, /^deny: agent-a → agent-b port 1001\n\s+by:\s+rule 1 \(line 4\)/);

  const bad = join(c.root, 'bad.json');
  writeFileSync(bad, '{\n  "default": "allow",\n  "rules": [\n    {"action": "permit", "from": "*", "to": "*"}\n  ]\n}\n');
  const e = failure(await runJson(['policy', 'validate', bad]), 'invalid_argument');
  assert.match(e.message, /bad\.json:4:16: rules\[0\]\.action: "action" must be "allow" or "deny", not "permit"/);
  assert.equal(e.detail.line, 4);
  const syn = join(c.root, 'syntax.json');
  writeFileSync(syn, '{"default": "allow",\n "rules": [}\n');
  const s = failure(await runJson(['policy', 'validate', syn]), 'invalid_argument');
  assert.match(s.message, /syntax\.json:2:/);
  failure(await runJson(['policy', 'test', good, '--from', 'a', '--to', 'b', '--port', '70000']), 'invalid_argument', 2);
  failure(await runJson(['policy', 'validate', join(c.root, 'none.json')]), 'not_found');
});
