// The audit log over a real file (src/node/audit/log.ts + store.ts): events from the node's bus become signed,
// chained records; a crash mid-write is acknowledged on reopen; denial floods become summaries; a key rotation
// and a replaced key keep the chain verifiable; the export verifies offline.
import test from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { identityFromSeed, toBase64, type Identity } from '../../../../src/crypto/identity.js';
import { silentLogger } from '../../../../src/core/logger.js';
import { NodeEvents } from '../../../../src/node/events.js';
import { AuditLog, type AuditLogOptions } from '../../../../src/node/audit/log.js';
import { DenialLimiter } from '../../../../src/node/audit/flood.js';
import { verifyAuditBytes } from '../../../../src/node/audit/chain.js';

const alice = identityFromSeed(new Uint8Array(32).fill(1));
const bob = identityFromSeed(new Uint8Array(32).fill(3));

interface World {
  dir: string;
  path: string;
  nowMs: number;
  timers: { at: number; fn: () => void; cancelled: boolean }[];
  identity: Identity;
  opts(): AuditLogOptions;
}

function world(): World {
  const dir = mkdtempSync(join(tmpdir(), 'pi-audit-'));
  const w: World = {
    dir,
    path: join(dir, 'audit.log'),
    nowMs: 1_764_650_000_000,
    timers: [],
    identity: alice,
    opts: () => ({
      path: w.path,
      identity: () => w.identity,
      nowMs: () => w.nowMs,
      after: (ms, fn) => {
        const t = { at: w.nowMs + ms, fn, cancelled: false };
        w.timers.push(t);
        return { cancel: () => (t.cancelled = true) };
      },
      logger: silentLogger(),
      version: 'test',
      limiter: { windowMs: 10_000, perWindow: 3 },
    }),
  };
  return w;
}

function open(w: World): AuditLog {
  const l = AuditLog.open(w.opts());
  assert.ok(l.ok, l.ok ? '' : l.error.message);
  return l.value;
}

function exportVerifies(log: AuditLog, key: Identity = alice): ReturnType<typeof verifyAuditBytes> {
  const e = log.exportLog(5);
  assert.ok(e.ok);
  const r = verifyAuditBytes(Buffer.from(e.value.text), { publicKey: key.publicKey });
  assert.equal(r.ok, true, JSON.stringify(r.failure));
  return r;
}

test('events from the bus become records; non-security events are left out; the file is 0600 and verifies', (t) => {
  const w = world();
  t.after(() => rmSync(w.dir, { recursive: true, force: true }));
  const log = open(w);
  const bus = new NodeEvents(() => w.nowMs);
  log.attach(bus);
  bus.emit({ type: 'daemon.started', data: { node_id: 5, address: '0:0000.0000.0005', version: 'test' } });
  bus.emit({ type: 'trust.approved', data: { node_id: 2, by: 'local' } });
  bus.emit({ type: 'message.received', data: { id: 'm', from: 2, from_address: 'x', type: 'text', size: 1 } });
  bus.emit({ type: 'trust.revoked', data: { node_id: 2, by: 'peer' } });
  bus.emit({ type: 'daemon.stopping', data: { reason: 'test' } });
  const page = log.list();
  assert.ok(page.ok);
  assert.deepEqual(page.value.entries.map((e) => e.kind), ['audit.created', 'daemon.started', 'trust.approved', 'trust.revoked', 'daemon.stopping']);
  assert.equal(page.value.total, 5);
  assert.equal(page.value.entries[2]!.data.node_id, 2);
  assert.equal(statSync(w.path).mode & 0o777, 0o600);
  const raw = verifyAuditBytes(readFileSync(w.path), { publicKey: alice.publicKey });
  assert.equal(raw.ok, true, JSON.stringify(raw.failure));
  const r = exportVerifies(log);
  assert.equal(r.records, 5);
  assert.equal(r.node_id, 5);
  // since / limit
  const two = log.list({ limit: 2 });
  assert.ok(two.ok);
  assert.equal(two.value.entries.length, 2);
  w.nowMs += 1000;
  log.record('trust.approved', { node_id: 3, by: 'local' });
  const since = log.list({ sinceMs: w.nowMs });
  assert.ok(since.ok);
  assert.deepEqual(since.value.entries.map((e) => e.seq), [5]);
  log.close();
});

test('reopening continues the chain; a torn last write is acknowledged (audit.torn_write) and verify lists it', (t) => {
  const w = world();
  t.after(() => rmSync(w.dir, { recursive: true, force: true }));
  const a = open(w);
  a.record('trust.approved', { node_id: 2, by: 'local' });
  a.close();
  // A crash in the middle of the next append.
  appendFileSync(w.path, '{"at_ms":1764650001000,"data":{"by":"local","node_id":3},"ha');
  const before = verifyAuditBytes(readFileSync(w.path));
  assert.equal(before.failure?.reason, 'torn');
  const b = open(w);
  b.record('trust.approved', { node_id: 3, by: 'local' });
  const kinds = b.list();
  assert.ok(kinds.ok);
  assert.deepEqual(kinds.value.entries.map((e) => e.kind), ['audit.created', 'trust.approved', 'audit.torn_write', 'trust.approved']);
  const raw = verifyAuditBytes(readFileSync(w.path), { publicKey: alice.publicKey });
  assert.equal(raw.ok, true, JSON.stringify(raw.failure));
  assert.equal(raw.torn_writes.length, 1);
  const ex = exportVerifies(b);
  assert.equal(ex.torn_writes.length, 1);
  b.close();
});

test('a whole record that only lost its newline is kept, not reported as torn', (t) => {
  const w = world();
  t.after(() => rmSync(w.dir, { recursive: true, force: true }));
  const a = open(w);
  a.record('trust.approved', { node_id: 2, by: 'local' });
  a.close();
  const text = readFileSync(w.path, 'utf8');
  writeFileSync(w.path, text.slice(0, -1), { mode: 0o600 });
  const b = open(w);
  b.record('trust.revoked', { node_id: 2, by: 'local' });
  const r = exportVerifies(b);
  assert.equal(r.records, 3);
  assert.equal(r.torn_writes.length, 0);
  b.close();
});

test('a denial flood: the first few recorded, the rest one summary per window with counts', (t) => {
  const w = world();
  t.after(() => rmSync(w.dir, { recursive: true, force: true }));
  const log = open(w);
  const bus = new NodeEvents(() => w.nowMs);
  log.attach(bus);
  for (let i = 0; i < 1000; i++) bus.emit({ type: 'policy.denied', data: { node_id: 2 + (i % 2), port: 1001, network: 'lab', rule: 'rule 1', count: 1 } });
  const mid = log.list();
  assert.ok(mid.ok);
  assert.equal(mid.value.entries.filter((e) => e.kind === 'policy.denied').length, 3);
  // The window ends: the timer writes the summary.
  w.nowMs += 10_000;
  for (const tm of w.timers.splice(0)) if (!tm.cancelled) tm.fn();
  const after = log.list();
  assert.ok(after.ok);
  const sums = after.value.entries.filter((e) => e.kind === 'policy.denied.summary');
  assert.equal(sums.length, 1);
  assert.equal(sums[0]!.data.suppressed, 997);
  assert.equal(sums[0]!.data.distinct, 2);
  // A later denial is recorded again.
  bus.emit({ type: 'policy.denied', data: { node_id: 9, port: 7, network: 'lab', rule: 'default', count: 1 } });
  const last = log.list();
  assert.ok(last.ok);
  assert.equal(last.value.entries.at(-1)!.kind, 'policy.denied');
  exportVerifies(log);
  log.close();
});

test('close writes a pending denial summary', (t) => {
  const w = world();
  t.after(() => rmSync(w.dir, { recursive: true, force: true }));
  const log = open(w);
  for (let i = 0; i < 10; i++) log.handleEvent({ type: 'policy.denied', data: { node_id: 2, port: 1, network: 'n', rule: 'r', count: 2 }, at_ms: w.nowMs });
  log.close();
  const r = verifyAuditBytes(readFileSync(w.path));
  assert.equal(r.ok, true, JSON.stringify(r.failure));
  assert.equal(r.kinds['policy.denied.summary'], 1);
});

test('limiter: window boundaries and counts', () => {
  const l = new DenialLimiter({ windowMs: 100, perWindow: 2 });
  const k = { node_id: 1, port: 2, network: 'n', rule: 'r' };
  assert.equal(l.handle(0, k), 'record');
  assert.equal(l.handle(1, k), 'record');
  assert.equal(l.handle(2, k, 5), 'suppress');
  assert.equal(l.pollDeadlineMs(), 100);
  assert.equal(l.pollSummary(99), null);
  const s = l.pollSummary(100);
  assert.equal(s?.suppressed, 5);
  assert.deepEqual(s?.top, [{ ...k, count: 5 }]);
  assert.equal(l.pollDeadlineMs(), null);
  assert.equal(l.handle(150, k), 'record');
  // A quiet window ends by itself.
  assert.equal(l.handle(400, k), 'record');
  assert.equal(l.handle(401, k), 'record');
  assert.equal(l.handle(402, k), 'suppress');
});

test('a local key rotation: recorded under the old key, later records under the new; the export verifies with either', (t) => {
  const w = world();
  t.after(() => rmSync(w.dir, { recursive: true, force: true }));
  const log = open(w);
  const bus = new NodeEvents(() => w.nowMs);
  log.attach(bus);
  w.identity = bob; // the keys code swapped the node identity, then emits
  bus.emit({ type: 'key.rotated', data: { node_id: 5, old_public_key: toBase64(alice.publicKey), new_public_key: toBase64(bob.publicKey), by: 'local' } });
  bus.emit({ type: 'trust.approved', data: { node_id: 2, by: 'local' } });
  assert.equal(log.publicKey, toBase64(bob.publicKey));
  const r = exportVerifies(log, bob);
  assert.deepEqual(r.unattested_key_changes, []);
  exportVerifies(log, alice);
  log.close();
});

test('a daemon started with another key records audit.key_changed and stays verifiable', (t) => {
  const w = world();
  t.after(() => rmSync(w.dir, { recursive: true, force: true }));
  const a = open(w);
  a.record('trust.approved', { node_id: 2, by: 'local' });
  a.close();
  w.identity = bob;
  const b = open(w);
  b.record('trust.approved', { node_id: 3, by: 'local' });
  const r = exportVerifies(b, bob);
  assert.equal(r.unattested_key_changes.length, 1);
  b.close();
});
