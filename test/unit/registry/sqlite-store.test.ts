import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../../src/core/logger.js';
import { FileStore } from '../../../src/registry/store.js';
import { SqliteStore, isSqliteFile } from '../../../src/registry/sqlite-store.js';
import { applyChange, stateToJson, type Change, type NodeRecord, type RegistryState } from '../../../src/registry/state.js';

function node(id: number, hostname = ''): NodeRecord {
  return { id, publicKey: `k${id}`, owner: '', realAddr: '127.0.0.1:1', isPublic: false, hostname, tags: ['t'], poloScore: 0, taskExec: false, isLegacy: false };
}

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'pilot-sqlite-'));
}

async function commitAll(s: { commit(c: Change[]): Promise<{ ok: boolean }> }, state: RegistryState, txs: Change[][]): Promise<void> {
  const rs = await Promise.all(
    txs.map((tx) => {
      for (const c of tx) applyChange(state, c);
      return s.commit(tx);
    }),
  );
  for (const r of rs) assert.ok(r.ok);
}

/** The state without its sequence number, for equality. */
function shape(s: RegistryState): unknown {
  const j = stateToJson(s, 0) as unknown as Record<string, unknown[]>;
  for (const k of Object.keys(j)) if (Array.isArray(j[k])) j[k] = [...j[k]!].map((x) => JSON.stringify(x)).sort();
  return j;
}

const EVERY_KIND: Change[][] = [
  [{ k: 'next', v: 4 }, { k: 'node', id: 1, v: node(1, 'alpha') }, { k: 'pubkey', key: 'k1', id: 1 }, { k: 'proven', key: 'k1', v: true }],
  [{ k: 'node', id: 2, v: node(2, 'beta') }, { k: 'pubkey', key: 'k2', id: 2 }, { k: 'node', id: 3, v: node(3) }],
  [{ k: 'trust', edge: '1>2', v: true }, { k: 'intent', edge: '2>1', v: true }, { k: 'trust', edge: '2>3', v: true }],
  [{ k: 'inbox', id: 1, v: [{ fromNodeId: 2, justification: 'j "quoted" ✓', timestampSec: 5 }] }],
  [{ k: 'responses', id: 2, v: [{ fromNodeId: 1, accept: true, timestampSec: 6 }] }],
  // Deletions of every kind that has one.
  [{ k: 'node', id: 3, v: null }, { k: 'trust', edge: '2>3', v: false }, { k: 'intent', edge: '2>1', v: false }],
  [{ k: 'pubkey', key: 'k2', id: null }, { k: 'responses', id: 2, v: [] }],
  // Networks (issue 15): the stored chain as a record; the store checks its shape only (members verify it).
  [{ k: 'network', id: 1, v: { id: 1, changes: [{ v: 1, seq: 0, op: 'create' }] as never } }, { k: 'network', id: 2, v: { id: 2, changes: [] } }],
  [{ k: 'network', id: 2, v: null }],
];

test('sqlite store: every change kind survives a reopen, deletions included', async () => {
  const dir = tmp();
  try {
    const path = join(dir, 'registry.db');
    const s = new SqliteStore(path, { logger: silentLogger() });
    const r = await s.load();
    assert.ok(r.ok);
    for (const tx of EVERY_KIND) await commitAll(s, r.value, [tx]);
    await s.close();
    assert.ok(isSqliteFile(path));
    const s2 = new SqliteStore(path, { logger: silentLogger() });
    const r2 = await s2.load();
    assert.ok(r2.ok);
    assert.deepEqual(shape(r2.value), shape(r.value));
    assert.equal(r2.value.hostnameIndex.get('alpha'), 1);
    assert.equal(r2.value.nodes.has(3), false);
    assert.equal(r2.value.pubKeyIndex.has('k2'), false);
    assert.equal(r2.value.inbox.get(1)![0]!.justification, 'j "quoted" ✓');
    await s2.close();
    assert.equal((await s2.commit([{ k: 'next', v: 9 }])).ok, false, 'a closed store refuses commits');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('sqlite store: concurrent commits in one turn share a transaction and all persist', async () => {
  const dir = tmp();
  try {
    const path = join(dir, 'registry.db');
    const s = new SqliteStore(path);
    const r = await s.load();
    assert.ok(r.ok);
    const txs: Change[][] = [];
    for (let i = 1; i <= 2000; i++) txs.push([{ k: 'node', id: i, v: node(i, `h${i}`) }, { k: 'pubkey', key: `k${i}`, id: i }]);
    await commitAll(s, r.value, txs);
    await s.close();
    const s2 = new SqliteStore(path);
    const r2 = await s2.load();
    assert.ok(r2.ok);
    assert.equal(r2.value.nodes.size, 2000);
    assert.equal(r2.value.hostnameIndex.get('h1234'), 1234);
    await s2.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('sqlite store: SIGKILL loses nothing that was acknowledged', async () => {
  const dir = tmp();
  try {
    const path = join(dir, 'registry.db');
    const mod = new URL('../../../src/registry/sqlite-store.js', import.meta.url).href;
    const script = join(dir, 'writer.mjs');
    writeFileSync(
      script,
      `const { SqliteStore } = await import(${JSON.stringify(mod)});
const s = new SqliteStore(${JSON.stringify(path)});
const r = await s.load();
if (!r.ok) { console.error(r.error.message); process.exit(3); }
for (let i = 1; ; i++) {
  const c = await s.commit([{ k: 'trust', edge: '1>' + i, v: true }, { k: 'next', v: i + 1 }]);
  if (!c.ok) process.exit(4);
  process.stdout.write('acked ' + i + '\\n');
}
`,
    );
    const execArgv = process.execArgv.filter((a) => !a.startsWith('--test'));
    const child = spawn(process.execPath, [...execArgv, script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let lastAcked = 0;
    let buf = '';
    await new Promise<void>((resolve, reject) => {
      child.once('exit', (code, sig) => (sig === 'SIGKILL' ? resolve() : reject(new Error(`writer exited ${code} ${sig}`))));
      child.stdout!.on('data', (b: Buffer) => {
        buf += b.toString();
        const lines = buf.split('\n');
        buf = lines.pop()!;
        for (const l of lines) if (l.startsWith('acked ')) lastAcked = Number(l.slice(6));
        if (lastAcked >= 150) child.kill('SIGKILL');
      });
    });
    assert.ok(lastAcked >= 150, `writer acknowledged ${lastAcked}`);
    const s = new SqliteStore(path);
    const r = await s.load();
    assert.ok(r.ok);
    for (let i = 1; i <= lastAcked; i++) assert.ok(r.value.trust.has(`1>${i}`), `acknowledged change ${i} of ${lastAcked} lost`);
    assert.ok(r.value.nextNodeId >= lastAcked + 1);
    await s.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('sqlite store: the previous JSON + log store is migrated once, old files kept, state equal', async () => {
  const dir = tmp();
  try {
    const path = join(dir, 'registry.json');
    const old = new FileStore(path, { logger: silentLogger(), snapshotEveryRecords: 3 });
    const r0 = await old.load();
    assert.ok(r0.ok);
    for (const tx of EVERY_KIND) await commitAll(old, r0.value, [tx]);
    await old.abandon(); // a snapshot and a log tail, as a crash leaves them
    assert.ok(existsSync(path) && existsSync(`${path}.wal`));
    const lines: string[] = [];
    const logger = silentLogger();
    const spy = Object.assign(Object.create(logger), { info: (o: unknown, m?: string) => lines.push(`${m ?? ''} ${JSON.stringify(o)}`), child: () => spy });
    const s = new SqliteStore(path, { logger: spy });
    const r = await s.load();
    assert.ok(r.ok, r.ok ? '' : r.error.message);
    assert.deepEqual(shape(r.value), shape(r0.value));
    assert.ok(isSqliteFile(path));
    assert.ok(existsSync(`${path}.pre-sqlite`) && existsSync(`${path}.wal.pre-sqlite`));
    assert.equal(lines.filter((l) => l.includes('migrated')).length, 1);
    await commitAll(s, r.value, [[{ k: 'next', v: 77 }]]);
    await s.close();
    const s2 = new SqliteStore(path, { logger: spy });
    const r2 = await s2.load();
    assert.ok(r2.ok);
    assert.equal(r2.value.nextNodeId, 77);
    assert.equal(lines.filter((l) => l.includes('migrated')).length, 1, 'migrated once only');
    await s2.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('sqlite store: a migration interrupted after its database was written completes at the next start', async () => {
  const dir = tmp();
  try {
    const path = join(dir, 'registry.db');
    const s = new SqliteStore(`${path}.sqlite-tmp`);
    const r = await s.load();
    assert.ok(r.ok);
    await commitAll(s, r.value, [[{ k: 'next', v: 5 }]]);
    await s.close();
    const s2 = new SqliteStore(path);
    const r2 = await s2.load();
    assert.ok(r2.ok);
    assert.equal(r2.value.nextNodeId, 5);
    assert.equal(existsSync(`${path}.sqlite-tmp`), false);
    await s2.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('sqlite store: a damaged database is a clear error and is left in place', async () => {
  const dir = tmp();
  try {
    const path = join(dir, 'registry.db');
    const s = new SqliteStore(path);
    const r = await s.load();
    assert.ok(r.ok);
    await commitAll(s, r.value, [[{ k: 'node', id: 1, v: node(1) }]]);
    await s.close();
    // Keep the header, wreck the pages after it.
    const { openSync, writeSync, closeSync } = await import('node:fs');
    const fd = openSync(path, 'r+');
    writeSync(fd, Buffer.alloc(4096, 0xee), 0, 4096, 100);
    closeSync(fd);
    const s2 = new SqliteStore(path);
    const r2 = await s2.load();
    assert.equal(r2.ok, false);
    if (!r2.ok) assert.equal(r2.error.code, 'internal');
    assert.ok(isSqliteFile(path), 'the damaged file is kept for the operator');
    await s2.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
