// Registry persistence. The original saves a JSON snapshot at most once a second after a change, so a crash
// loses up to a second of acknowledged registrations, hostnames and handshake requests. Ours: a write-ahead log
// fsync'd before the client gets its `_ok` (group commit: one fdatasync per batch of concurrent requests), plus
// periodic atomic snapshots (tmp + fsync + rename + dir fsync) after which the log is truncated.
//
// Files for `--store PATH`: PATH (snapshot JSON), PATH.wal (log), PATH.tmp (snapshot being written).
// Log record: one line `<crc32 hex8> <json {"s":seq,"c":[changes]}>\n`. On load: snapshot, then every record
// with seq > snapshot.seq, in order. A torn or corrupt *last* record is dropped (it was never acknowledged);
// a bad record followed by good ones, a gap in seq, or an unreadable snapshot stop the start with an error —
// the snapshot is renamed PATH.corrupt-<ts> and kept, never silently replaced by an empty registry.
import { writeFileSafeAsync } from '../core/safe-file.js';
import { promises as fsp, constants as fsc } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import type { Logger } from '../core/logger.js';
import { err, ok, type Result } from '../core/result.js';
import { crc32 } from '../wire/crc32.js';
import {
  applyChange,
  emptyState,
  isChange,
  stateFromJson,
  stateToJson,
  type Change,
  type RegistryState,
} from './state.js';

export interface RegistryStore {
  /** Load persisted state. The store keeps a reference to the returned object and snapshots it later. */
  load(): Promise<Result<RegistryState>>;
  /**
   * Record one request's changes (already applied to the loaded state). Resolves once they survive a crash;
   * `internal` on an I/O failure. Calls made in order are durable in order.
   */
  commit(changes: Change[]): Promise<Result<void>>;
  /** Flush, write a final snapshot, close files. */
  close(): Promise<void>;
  // Shared stores (etcd, several replicas; src/registry/etcd-store.ts). A commit may then fail with
  // storeConflict: another replica changed a key the request wrote, the loaded state has been corrected, and
  // the server runs the request again. The methods below are absent for single-process stores.
  /** This replica heard from the node (register, heartbeat): hold its liveness here. */
  touch?(nodeId: number): void;
  /** Another replica holds the node alive: the reaper leaves it alone. */
  isAliveElsewhere?(nodeId: number): boolean;
  /** Deliver a push to the node at whichever replica it is subscribed (no I/O wait; best effort). */
  publish?(nodeId: number, msg: Record<string, unknown>): void;
  /** Pushes published by other replicas; returns the unsubscribe. */
  onRemotePush?(fn: (nodeId: number, msg: Record<string, unknown>) => void): () => void;
  /** Changes this replica's state took from the shared store (another replica's commits, seen by the watch):
   *  what the server derives from the state (the networks' verified views) follows them. */
  onStateChange?(fn: (c: Change) => void): () => void;
}

/** A commit refused because another replica changed the same keys first (the request is to be run again). */
export function storeConflict(message: string): Result<never> {
  return err('internal', `registry store conflict: ${message}`, { detail: { storeConflict: true } });
}

export function isStoreConflict(r: Result<unknown>): boolean {
  return !r.ok && r.error.detail?.storeConflict === true;
}

/** No persistence (tests, `pilot-rendezvous` without --store). */
export class MemoryStore implements RegistryStore {
  private state: RegistryState | null = null;
  async load(): Promise<Result<RegistryState>> {
    this.state = emptyState();
    return ok(this.state);
  }
  async commit(): Promise<Result<void>> {
    return ok();
  }
  async close(): Promise<void> {}
}

export interface FileStoreOptions {
  logger?: Logger;
  /** Snapshot after this many log records. */
  snapshotEveryRecords?: number;
  /** Snapshot at least this often while records keep coming. */
  snapshotIntervalMs?: number;
}

interface Pending {
  seq: number;
  line: Uint8Array;
  resolve: (r: Result<void>) => void;
}

const encoder = new TextEncoder();

export class FileStore implements RegistryStore {
  private readonly walPath: string;
  private readonly tmpPath: string;
  private wal: fsp.FileHandle | null = null;
  private state: RegistryState | null = null;
  private seq = 0;
  private recordsSinceSnapshot = 0;
  private lastSnapshotMs = Date.now();
  private queue: Pending[] = [];
  private writing: Promise<void> | null = null;
  private isClosed = false;
  private readonly snapshotEveryRecords: number;
  private readonly snapshotIntervalMs: number;

  constructor(
    private readonly path: string,
    private readonly opts: FileStoreOptions = {},
  ) {
    this.walPath = path + '.wal';
    this.tmpPath = path + '.tmp';
    this.snapshotEveryRecords = opts.snapshotEveryRecords ?? 10_000;
    this.snapshotIntervalMs = opts.snapshotIntervalMs ?? 60_000;
  }

  async load(): Promise<Result<RegistryState>> {
    try {
      await fsp.mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
      await fsp.rm(this.tmpPath, { force: true });
    } catch (e) {
      return err('internal', `cannot prepare store directory for ${this.path}`, { cause: e });
    }

    let state = emptyState();
    let snapshotSeq = 0;
    let snapText: string | null = null;
    try {
      snapText = await fsp.readFile(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        return err('internal', `cannot read registry snapshot ${this.path}`, { cause: e });
      }
    }
    if (snapText !== null) {
      let parsed: unknown;
      let problem: string | null = null;
      try {
        parsed = JSON.parse(snapText);
      } catch (e) {
        problem = `not JSON (${(e as Error).message})`;
      }
      if (problem === null) {
        const r = stateFromJson(parsed);
        if (typeof r === 'string') problem = r;
        else {
          state = r.state;
          snapshotSeq = r.seq;
        }
      }
      if (problem !== null) {
        const aside = `${this.path}.corrupt-${Date.now()}`;
        try {
          await fsp.rename(this.path, aside);
        } catch {
          /* keep it in place if even the rename fails; the error below still stops the start */
        }
        return err('internal', `registry snapshot ${this.path} is corrupt: ${problem}; moved to ${aside}`, {
          hint: 'restore a good snapshot to the store path, or start with an empty store deliberately',
          detail: { path: this.path, keptAs: aside },
        });
      }
    }

    // Replay the log.
    let walBytes: Buffer | null = null;
    try {
      walBytes = await fsp.readFile(this.walPath);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        return err('internal', `cannot read registry log ${this.walPath}`, { cause: e });
      }
    }
    let seq = snapshotSeq;
    let goodEnd = 0;
    let replayed = 0;
    if (walBytes && walBytes.length > 0) {
      let off = 0;
      let badAt = -1;
      while (off < walBytes.length) {
        const nl = walBytes.indexOf(0x0a, off);
        if (nl < 0) break; // torn tail without newline
        const rec = parseRecord(walBytes.subarray(off, nl));
        if (!rec) {
          badAt = off;
          off = nl + 1;
          continue;
        }
        if (badAt >= 0) {
          return err('internal', `registry log ${this.walPath} is corrupt at byte ${badAt} (valid records follow)`, {
            hint: 'the log was damaged in the middle; restore it or move it aside deliberately',
          });
        }
        if (rec.s > seq) {
          if (rec.s !== seq + 1) {
            return err('internal', `registry log ${this.walPath} skips from seq ${seq} to ${rec.s}`, {
              hint: 'the snapshot and log do not belong together; restore the matching snapshot',
            });
          }
          for (const c of rec.c) applyChange(state, c);
          seq = rec.s;
          replayed++;
        }
        off = nl + 1;
        goodEnd = off;
      }
      if (goodEnd < walBytes.length) {
        this.opts.logger?.warn(
          { path: this.walPath, droppedBytes: walBytes.length - goodEnd },
          'registry log: dropping torn last record',
        );
        try {
          await fsp.truncate(this.walPath, goodEnd);
        } catch (e) {
          return err('internal', `cannot truncate torn registry log ${this.walPath}`, { cause: e });
        }
      }
    }

    try {
      this.wal = await fsp.open(this.walPath, fsc.O_WRONLY | fsc.O_APPEND | fsc.O_CREAT, 0o600);
      await this.wal.sync();
      await syncDir(dirname(this.path));
    } catch (e) {
      return err('internal', `cannot open registry log ${this.walPath}`, { cause: e });
    }
    this.state = state;
    this.seq = seq;
    this.recordsSinceSnapshot = replayed;
    this.opts.logger?.info(
      { path: this.path, nodes: state.nodes.size, snapshotSeq, replayed, seq },
      'registry store loaded',
    );
    return ok(state);
  }

  commit(changes: Change[]): Promise<Result<void>> {
    if (changes.length === 0) return Promise.resolve(ok());
    if (this.isClosed || !this.wal) return Promise.resolve(err('internal', 'registry store is closed'));
    const seq = ++this.seq;
    const json = JSON.stringify({ s: seq, c: changes });
    const body = encoder.encode(json);
    const line = encoder.encode(`${crc32(body).toString(16).padStart(8, '0')} ${json}\n`);
    return new Promise((resolve) => {
      this.queue.push({ seq, line, resolve });
      this.kick();
    });
  }

  async close(): Promise<void> {
    if (this.isClosed) return;
    while (this.writing) await this.writing;
    this.isClosed = true;
    if (this.wal && this.state && this.recordsSinceSnapshot > 0) {
      const r = await this.snapshot();
      if (!r.ok) this.opts.logger?.error({ err: r.error }, 'registry final snapshot failed');
    }
    await this.wal?.close().catch(() => undefined);
    this.wal = null;
  }

  /** Close the files with no final snapshot — the state a crash leaves behind (tests). */
  async abandon(): Promise<void> {
    while (this.writing) await this.writing;
    this.isClosed = true;
    await this.wal?.close().catch(() => undefined);
    this.wal = null;
  }

  private kick(): void {
    if (this.writing) return;
    this.writing = this.drain().finally(() => {
      this.writing = null;
      if (this.queue.length > 0) this.kick();
    });
  }

  /** Write everything queued in one append + one fdatasync (group commit), then maybe snapshot. */
  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      const total = batch.reduce((n, p) => n + p.line.length, 0);
      const buf = Buffer.allocUnsafe(total);
      let off = 0;
      for (const p of batch) {
        buf.set(p.line, off);
        off += p.line.length;
      }
      let result: Result<void> = ok();
      try {
        let written = 0;
        while (written < buf.length) {
          const { bytesWritten } = await this.wal!.write(buf, written, buf.length - written);
          written += bytesWritten;
        }
        await this.wal!.datasync();
      } catch (e) {
        result = err('internal', 'registry log write failed', { cause: e });
        this.opts.logger?.error({ err: e }, 'registry log write failed');
      }
      this.recordsSinceSnapshot += batch.length;
      for (const p of batch) p.resolve(result);
      if (
        result.ok &&
        (this.recordsSinceSnapshot >= this.snapshotEveryRecords ||
          Date.now() - this.lastSnapshotMs >= this.snapshotIntervalMs)
      ) {
        const r = await this.snapshot();
        if (!r.ok) this.opts.logger?.error({ err: r.error }, 'registry snapshot failed');
      }
    }
  }

  /**
   * Atomic snapshot of the live state, then log truncation. The state already holds every change with a seq
   * handed out so far (changes are applied before commit), so the snapshot's seq is the current one; records
   * still queued are covered by it and are skipped on load.
   */
  private async snapshot(): Promise<Result<void>> {
    if (!this.state || !this.wal) return ok();
    const seq = this.seq;
    const text = JSON.stringify(stateToJson(this.state, seq));
    try {
      // An exclusive, no-follow temp file with a random name: a file or symlink planted beside the store is
      // never written through (the fixed `<path>.tmp` was).
      const w = await writeFileSafeAsync(this.path, text);
      if (!w.ok) return w;
      // A crash between rename and truncate leaves records with seq <= snapshot seq: skipped on load.
      await this.wal.truncate(0);
      await this.wal.sync();
    } catch (e) {
      return err('internal', `registry snapshot to ${this.path} failed`, { cause: e });
    }
    this.recordsSinceSnapshot = 0;
    this.lastSnapshotMs = Date.now();
    this.opts.logger?.debug({ path: basename(this.path), seq, bytes: text.length }, 'registry snapshot written');
    return ok();
  }
}

function parseRecord(line: Uint8Array): { s: number; c: Change[] } | null {
  if (line.length < 10 || line[8] !== 0x20) return null;
  const crcText = Buffer.from(line.subarray(0, 8)).toString('latin1');
  if (!/^[0-9a-f]{8}$/.test(crcText)) return null;
  const body = line.subarray(9);
  if (crc32(body) !== parseInt(crcText, 16)) return null;
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(body).toString('utf8'));
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const o = v as { s?: unknown; c?: unknown };
  if (typeof o.s !== 'number' || !Number.isInteger(o.s) || o.s < 1 || !Array.isArray(o.c)) return null;
  if (!o.c.every(isChange)) return null;
  return { s: o.s, c: o.c as Change[] };
}

async function syncDir(dir: string): Promise<void> {
  const fh = await fsp.open(join(dir, '.'), 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
