import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, appendFileSync, readdirSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../../src/core/logger.js';
import { FileStore } from '../../../src/registry/store.js';
import { applyChange, type Change, type NodeRecord } from '../../../src/registry/state.js';

function node(id: number, hostname = ''): NodeRecord {
  return { id, publicKey: `k${id}`, owner: '', realAddr: '127.0.0.1:1', isPublic: false, hostname, tags: [], poloScore: 0, taskExec: false, isLegacy: false };
}

const opened: FileStore[] = [];
test.afterEach(async () => {
  for (const s of opened.splice(0)) await s.abandon();
});

async function open(path: string, opts = {}) {
  const s = new FileStore(path, { logger: silentLogger(), ...opts });
  opened.push(s);
  const r = await s.load();
  return { s, r };
}

async function commitAll(s: FileStore, state: Parameters<typeof applyChange>[0], txs: Change[][]) {
  await Promise.all(
    txs.map((tx) => {
      for (const c of tx) applyChange(state, c);
      return s.commit(tx).then((r) => assert.ok(r.ok));
    }),
  );
}

test('file store: committed changes survive a reopen (log replay), torn tail dropped', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pilot-store-'));
  try {
    const path = join(dir, 'registry.json');
    const { s, r } = await open(path);
    assert.ok(r.ok);
    await commitAll(s, r.value, [
      [{ k: 'next', v: 2 }, { k: 'node', id: 1, v: node(1, 'alpha') }, { k: 'pubkey', key: 'k1', id: 1 }],
      [{ k: 'trust', edge: '1>2', v: true }],
      [{ k: 'inbox', id: 1, v: [{ fromNodeId: 2, justification: 'j', timestampSec: 5 }] }],
    ]);
    // Simulate a crash: no close(); add half a record.
    await s.abandon();
    appendFileSync(path + '.wal', '0badc0de {"s":4,"c":[{"k":"next"');
    const { s: s2, r: r2 } = await open(path);
    assert.ok(r2.ok);
    assert.equal(r2.value.nextNodeId, 2);
    assert.equal(r2.value.hostnameIndex.get('alpha'), 1);
    assert.ok(r2.value.trust.has('1>2'));
    assert.equal(r2.value.inbox.get(1)!.length, 1);
    assert.ok(!readFileSync(path + '.wal', 'utf8').includes('0badc0de'), 'torn tail truncated');
    // Continue appending after recovery.
    await commitAll(s2, r2.value, [[{ k: 'next', v: 3 }]]);
    const { r: r3 } = await open(path);
    assert.ok(r3.ok);
    assert.equal(r3.value.nextNodeId, 3);
    await s2.abandon();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('file store: snapshots compact the log; reload = snapshot + newer records', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pilot-store-'));
  try {
    const path = join(dir, 'registry.json');
    const { s, r } = await open(path, { snapshotEveryRecords: 5 });
    assert.ok(r.ok);
    for (let i = 1; i <= 12; i++) await commitAll(s, r.value, [[{ k: 'node', id: i, v: node(i, `h${i}`) }, { k: 'next', v: i + 1 }]]);
    assert.ok(statSync(path).size > 0, 'snapshot written');
    assert.ok(statSync(path + '.wal').size < 600, 'log truncated after the snapshot');
    const { r: r2 } = await open(path);
    assert.ok(r2.ok);
    assert.equal(r2.value.nodes.size, 12);
    assert.equal(r2.value.nextNodeId, 13);
    await s.close();
    const { r: r3 } = await open(path);
    assert.ok(r3.ok);
    assert.equal(r3.value.nodes.size, 12);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('file store: a corrupt snapshot is an error and is kept aside, never emptied', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pilot-store-'));
  try {
    const path = join(dir, 'registry.json');
    writeFileSync(path, '{"version":1,"seq":3,"next_no');
    const { r } = await open(path);
    assert.equal(r.ok, false);
    if (!r.ok) {
      assert.equal(r.error.code, 'internal');
      assert.match(r.error.message, /corrupt/);
    }
    const aside = readdirSync(dir).filter((f) => f.startsWith('registry.json.corrupt-'));
    assert.equal(aside.length, 1);
    assert.equal(readFileSync(join(dir, aside[0]!), 'utf8'), '{"version":1,"seq":3,"next_no');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('file store: damage in the middle of the log, or a seq gap, stops the start', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pilot-store-'));
  try {
    const path = join(dir, 'registry.json');
    const { r, s } = await open(path);
    assert.ok(r.ok);
    for (let i = 1; i <= 3; i++) await commitAll(s, r.value, [[{ k: 'next', v: i + 1 }]]);
    await s.abandon(); // as after a crash
    const text = readFileSync(path + '.wal', 'utf8');
    const lines = text.split('\n');
    assert.equal(lines.length, 4);
    const damaged = [...lines];
    damaged[1] = damaged[1]!.replace('"v":3', '"v":9');
    writeFileSync(path + '.wal', damaged.join('\n'));
    const r1 = (await open(path)).r;
    assert.equal(r1.ok, false);
    if (!r1.ok) assert.match(r1.error.message, /corrupt at byte/);
    // A log that does not continue the (absent) snapshot is refused too.
    writeFileSync(path + '.wal', lines.slice(2).join('\n'));
    const r2 = (await open(path)).r;
    assert.equal(r2.ok, false);
    if (!r2.ok) assert.match(r2.error.message, /skips/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('attack (planted temp file): a symlink planted at the snapshot\'s old temp name is never written through', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pilot-store-'));
  try {
    const path = join(dir, 'registry.json');
    const { s, r } = await open(path, { snapshotEveryRecords: 3 });
    assert.ok(r.ok);
    // Planted after load (load removes a stale <path>.tmp): the old snapshot opened <path>.tmp with 'w'.
    const victim = join(dir, 'victim.txt');
    writeFileSync(victim, 'untouched');
    symlinkSync(victim, path + '.tmp');
    for (let i = 1; i <= 7; i++) await commitAll(s, r.value, [[{ k: 'node', id: i, v: node(i) }, { k: 'next', v: i + 1 }]]);
    assert.ok(statSync(path).size > 0, 'snapshot written');
    assert.equal(readFileSync(victim, 'utf8'), 'untouched');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.ok(!readdirSync(dir).some((n) => n.startsWith('.registry.json.tmp-')), 'no temp file left behind');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
