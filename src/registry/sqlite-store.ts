// The registry's embedded store (issue 16): SQLite through better-sqlite3, WAL journal, synchronous=FULL, one
// transaction per batch of acknowledged requests. A commit resolves only after its transaction is durable, so
// a SIGKILL (or a power cut) loses nothing a client was told `_ok` about. Requests that arrive in the same
// event-loop turn share one transaction (group commit: one fsync for the lot), as the log it replaces did.
//
// Tables mirror src/registry/state.ts's Change kinds one to one, so `commit` is a direct translation of the
// changes the server applied (full values, idempotent). The whole state is read into memory at load (the
// server answers from memory); the database is the durable copy.
//
// Migration: a `--store PATH` that holds the previous store format (a JSON snapshot at PATH and/or a write-ahead
// log PATH.wal, src/registry/store.ts's FileStore) is read once with FileStore, written into a new database
// next to it (PATH.sqlite-tmp), and only then swapped in: PATH → PATH.pre-sqlite, PATH.wal → PATH.wal.pre-sqlite,
// PATH.sqlite-tmp → PATH, with one log line. A crash at any point leaves either the old files or a finished
// database (a PATH.sqlite-tmp beside a missing PATH is a finished migration and is completed at the next start).
import Database from 'better-sqlite3';
import { existsSync, mkdirSync, openSync, readSync, closeSync, renameSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '../core/logger.js';
import { err, ok, type Result } from '../core/result.js';
import { FileStore, type RegistryStore } from './store.js';
import {
  applyChange,
  emptyState,
  isChange,
  type Change,
  type HandshakeRequestRecord,
  type HandshakeResponseRecord,
  type KeyHistoryRecord,
  type NetworkRecord,
  type NodeRecord,
  type RegistryState,
} from './state.js';

const SCHEMA_VERSION = 1;
const SQLITE_MAGIC = 'SQLite format 3\0';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS nodes (id INTEGER PRIMARY KEY, rec TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS pubkeys (key TEXT PRIMARY KEY, id INTEGER NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS trust (edge TEXT PRIMARY KEY) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS intents (edge TEXT PRIMARY KEY) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS proven (key TEXT PRIMARY KEY) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inbox (id INTEGER PRIMARY KEY, recs TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS responses (id INTEGER PRIMARY KEY, recs TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS keyhist (id INTEGER PRIMARY KEY, rec TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS networks (id INTEGER PRIMARY KEY, rec TEXT NOT NULL) STRICT;
`;

export interface SqliteStoreOptions {
  logger?: Logger;
}

interface Waiter {
  changes: Change[];
  resolve: (r: Result<void>) => void;
}

type Stmt = Database.Statement;

/** True when `path` starts with SQLite's file header. */
export function isSqliteFile(path: string): boolean {
  let fd: number | null = null;
  try {
    fd = openSync(path, 'r');
    const b = Buffer.alloc(16);
    return readSync(fd, b, 0, 16, 0) === 16 && b.toString('latin1') === SQLITE_MAGIC;
  } catch {
    return false;
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

export class SqliteStore implements RegistryStore {
  private db: Database.Database | null = null;
  private stmts: Record<string, Stmt> | null = null;
  private queue: Waiter[] = [];
  private isScheduled = false;
  private isClosed = false;

  constructor(
    readonly path: string,
    private readonly opts: SqliteStoreOptions = {},
  ) {}

  async load(): Promise<Result<RegistryState>> {
    try {
      mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
    } catch (e) {
      return err('internal', `cannot prepare store directory for ${this.path}`, { cause: e });
    }
    const migrated = await this.migrateIfNeeded();
    if (!migrated.ok) return migrated;
    const opened = openDatabase(this.path);
    if (!opened.ok) return opened;
    this.db = opened.value;
    this.stmts = prepare(this.db);
    try {
      return ok(readState(this.db));
    } catch (e) {
      return err('internal', `registry store ${this.path} has unreadable rows: ${(e as Error).message}`, {
        cause: e,
        hint: 'restore the database from a backup, or move it away to start empty',
      });
    }
  }

  commit(changes: Change[]): Promise<Result<void>> {
    if (this.isClosed || !this.db) return Promise.resolve(err('internal', 'registry store is closed'));
    if (changes.length === 0) return Promise.resolve(ok());
    return new Promise((resolve) => {
      this.queue.push({ changes, resolve });
      if (this.isScheduled) return;
      this.isScheduled = true;
      setImmediate(() => this.drain());
    });
  }

  async close(): Promise<void> {
    if (this.isClosed) return;
    this.drain();
    this.isClosed = true;
    try {
      this.db?.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      /* closing anyway */
    }
    this.db?.close();
    this.db = null;
  }

  /** One transaction for everything queued this turn; every waiter gets its outcome. */
  private drain(): void {
    this.isScheduled = false;
    const batch = this.queue.splice(0);
    if (batch.length === 0 || !this.db || !this.stmts) {
      for (const w of batch) w.resolve(err('internal', 'registry store is closed'));
      return;
    }
    const st = this.stmts;
    const apply = this.db.transaction((ws: Waiter[]) => {
      for (const w of ws) for (const c of w.changes) writeChange(st, c);
    });
    let result: Result<void>;
    try {
      apply(batch);
      result = ok();
    } catch (e) {
      this.opts.logger?.error({ err: (e as Error).message, path: this.path }, 'registry store write failed');
      result = err('internal', `registry store write failed: ${(e as Error).message}`, { cause: e });
    }
    for (const w of batch) w.resolve(result);
  }

  /** The previous format at PATH / PATH.wal → a database at PATH, once. */
  private async migrateIfNeeded(): Promise<Result<void>> {
    const p = this.path;
    const tmp = `${p}.sqlite-tmp`;
    if (!existsSync(p) && existsSync(tmp) && isSqliteFile(tmp)) {
      renameSync(tmp, p); // a migration that finished its database but not the swap
      this.opts.logger?.info({ path: p }, 'completed an interrupted registry store migration');
      return ok();
    }
    const hasOld = (existsSync(p) && !isSqliteFile(p)) || existsSync(`${p}.wal`);
    if (!hasOld) return ok();
    const legacy = new FileStore(p, this.opts.logger ? { logger: this.opts.logger } : {});
    const loaded = await legacy.load();
    if (!loaded.ok) return loaded;
    await legacy.abandon();
    rmSync(tmp, { force: true });
    const db = openDatabase(tmp);
    if (!db.ok) return db;
    try {
      const st = prepare(db.value);
      db.value.transaction(() => {
        for (const c of changesOf(loaded.value)) writeChange(st, c);
      })();
      db.value.pragma('wal_checkpoint(TRUNCATE)');
    } catch (e) {
      db.value.close();
      rmSync(tmp, { force: true });
      return err('internal', `migrating the registry store ${p} to SQLite failed: ${(e as Error).message}`, { cause: e });
    } finally {
      if (db.value.open) db.value.close();
    }
    if (existsSync(p)) renameSync(p, `${p}.pre-sqlite`);
    if (existsSync(`${p}.wal`)) renameSync(`${p}.wal`, `${p}.wal.pre-sqlite`);
    renameSync(tmp, p);
    this.opts.logger?.info(
      { path: p, nodes: loaded.value.nodes.size, kept: `${p}.pre-sqlite` },
      'migrated the registry store to SQLite (the old files are kept beside it)',
    );
    return ok();
  }
}

function openDatabase(path: string): Result<Database.Database> {
  try {
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = OFF');
    db.exec(SCHEMA);
    const v = db.prepare('SELECT v FROM meta WHERE k = ?').get('schema') as { v: number } | undefined;
    if (v === undefined) db.prepare('INSERT INTO meta (k, v) VALUES (?, ?)').run('schema', SCHEMA_VERSION);
    else if (v.v !== SCHEMA_VERSION) {
      db.close();
      return err('internal', `registry store ${path} has schema ${v.v}; this version reads ${SCHEMA_VERSION}`, {
        hint: 'run the pilot-rendezvous version that wrote it, or move the file away to start empty',
      });
    }
    return ok(db);
  } catch (e) {
    return err('internal', `cannot open the registry store ${path}: ${(e as Error).message}`, {
      cause: e,
      hint: 'check that --store names a SQLite database (or a previous JSON store) you can write',
    });
  }
}

function prepare(db: Database.Database): Record<string, Stmt> {
  return {
    next: db.prepare("INSERT INTO meta (k, v) VALUES ('next', ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v"),
    nodeSet: db.prepare('INSERT INTO nodes (id, rec) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET rec = excluded.rec'),
    nodeDel: db.prepare('DELETE FROM nodes WHERE id = ?'),
    keySet: db.prepare('INSERT INTO pubkeys (key, id) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET id = excluded.id'),
    keyDel: db.prepare('DELETE FROM pubkeys WHERE key = ?'),
    trustSet: db.prepare('INSERT OR IGNORE INTO trust (edge) VALUES (?)'),
    trustDel: db.prepare('DELETE FROM trust WHERE edge = ?'),
    intentSet: db.prepare('INSERT OR IGNORE INTO intents (edge) VALUES (?)'),
    intentDel: db.prepare('DELETE FROM intents WHERE edge = ?'),
    provenSet: db.prepare('INSERT OR IGNORE INTO proven (key) VALUES (?)'),
    provenDel: db.prepare('DELETE FROM proven WHERE key = ?'),
    inboxSet: db.prepare('INSERT INTO inbox (id, recs) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET recs = excluded.recs'),
    inboxDel: db.prepare('DELETE FROM inbox WHERE id = ?'),
    respSet: db.prepare('INSERT INTO responses (id, recs) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET recs = excluded.recs'),
    respDel: db.prepare('DELETE FROM responses WHERE id = ?'),
    // Key histories (issue 14: rotate-key): one JSON row per node id.
    keysSet: db.prepare('INSERT INTO keyhist (id, rec) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET rec = excluded.rec'),
    keysDel: db.prepare('DELETE FROM keyhist WHERE id = ?'),
    netSet: db.prepare('INSERT INTO networks (id, rec) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET rec = excluded.rec'),
    netDel: db.prepare('DELETE FROM networks WHERE id = ?'),
  };
}

function writeChange(st: Record<string, Stmt>, c: Change): void {
  switch (c.k) {
    case 'next':
      st.next!.run(c.v);
      return;
    case 'node':
      if (c.v) st.nodeSet!.run(c.id, JSON.stringify(c.v));
      else st.nodeDel!.run(c.id);
      return;
    case 'pubkey':
      if (c.id === null) st.keyDel!.run(c.key);
      else st.keySet!.run(c.key, c.id);
      return;
    case 'trust':
      (c.v ? st.trustSet! : st.trustDel!).run(c.edge);
      return;
    case 'intent':
      (c.v ? st.intentSet! : st.intentDel!).run(c.edge);
      return;
    case 'proven':
      (c.v ? st.provenSet! : st.provenDel!).run(c.key);
      return;
    case 'inbox':
      if (c.v.length === 0) st.inboxDel!.run(c.id);
      else st.inboxSet!.run(c.id, JSON.stringify(c.v));
      return;
    case 'responses':
      if (c.v.length === 0) st.respDel!.run(c.id);
      else st.respSet!.run(c.id, JSON.stringify(c.v));
      return;
    case 'keys':
      if (c.v) st.keysSet!.run(c.id, JSON.stringify(c.v));
      else st.keysDel!.run(c.id);
      return;
    case 'network':
      if (c.v) st.netSet!.run(c.id, JSON.stringify(c.v));
      else st.netDel!.run(c.id);
      return;
  }
}

/** The rows as Changes, checked with the same structural check the log used, then applied to a fresh state. */
function readState(db: Database.Database): RegistryState {
  const s = emptyState();
  const changes: Change[] = [];
  const next = db.prepare("SELECT v FROM meta WHERE k = 'next'").get() as { v: number } | undefined;
  if (next) changes.push({ k: 'next', v: next.v });
  for (const r of db.prepare('SELECT id, rec FROM nodes').all() as { id: number; rec: string }[]) {
    changes.push({ k: 'node', id: r.id, v: JSON.parse(r.rec) as NodeRecord });
  }
  for (const r of db.prepare('SELECT key, id FROM pubkeys').all() as { key: string; id: number }[]) changes.push({ k: 'pubkey', key: r.key, id: r.id });
  for (const r of db.prepare('SELECT edge FROM trust').all() as { edge: string }[]) changes.push({ k: 'trust', edge: r.edge, v: true });
  for (const r of db.prepare('SELECT edge FROM intents').all() as { edge: string }[]) changes.push({ k: 'intent', edge: r.edge, v: true });
  for (const r of db.prepare('SELECT key FROM proven').all() as { key: string }[]) changes.push({ k: 'proven', key: r.key, v: true });
  for (const r of db.prepare('SELECT id, recs FROM inbox').all() as { id: number; recs: string }[]) {
    changes.push({ k: 'inbox', id: r.id, v: JSON.parse(r.recs) as HandshakeRequestRecord[] });
  }
  for (const r of db.prepare('SELECT id, recs FROM responses').all() as { id: number; recs: string }[]) {
    changes.push({ k: 'responses', id: r.id, v: JSON.parse(r.recs) as HandshakeResponseRecord[] });
  }
  for (const r of db.prepare('SELECT id, rec FROM keyhist').all() as { id: number; rec: string }[]) {
    changes.push({ k: 'keys', id: r.id, v: JSON.parse(r.rec) as KeyHistoryRecord });
  }
  for (const r of db.prepare('SELECT id, rec FROM networks').all() as { id: number; rec: string }[]) {
    changes.push({ k: 'network', id: r.id, v: JSON.parse(r.rec) as NetworkRecord });
  }
  for (const c of changes) {
    if (!isChange(c)) throw new Error(`malformed row ${JSON.stringify(c).slice(0, 200)}`);
    applyChange(s, c);
  }
  return s;
}

/** A whole state as the Changes that rebuild it (migration). */
function changesOf(s: RegistryState): Change[] {
  const out: Change[] = [{ k: 'next', v: s.nextNodeId }];
  for (const n of s.nodes.values()) out.push({ k: 'node', id: n.id, v: n });
  for (const [key, id] of s.pubKeyIndex) out.push({ k: 'pubkey', key, id });
  for (const edge of s.trust) out.push({ k: 'trust', edge, v: true });
  for (const edge of s.handshakeIntents) out.push({ k: 'intent', edge, v: true });
  for (const key of s.provenKeys) out.push({ k: 'proven', key, v: true });
  for (const [id, v] of s.inbox) out.push({ k: 'inbox', id, v });
  for (const [id, v] of s.responses) out.push({ k: 'responses', id, v });
  for (const [id, v] of s.keyHistory) out.push({ k: 'keys', id, v });
  for (const [id, v] of s.networks) out.push({ k: 'network', id, v });
  return out;
}
