// Partial files of resumable transfers, in <home>/partial/ (never in received/, so a partial is never listed
// as received). One transfer = <key>.part (the bytes so far) + <key>.json (sender, name, size, offered SHA-256,
// checkpointed offset). key = SHA-256 of "<sender node id>:<offered sha256>:<size>", so the same file from the
// same sender resumes whatever its name, path or connection.
//
// Durability: a checkpoint fsyncs the .part, then writes the .json atomically; the receiver acknowledges only
// checkpointed offsets. On resume the .part is cut back to the checkpointed offset (bytes after it may not have
// reached the disk) and the SHA-256 state is rebuilt by reading the .part from the start: Node's hash objects
// cannot export their mid-state, and reading back 200 MB costs well under a second, once per resume.
// A partial not touched for PARTIAL_STALE_MS (default 24 h) is deleted by the sweep, which runs when the
// service starts and whenever a transfer begins.
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { createHash, type Hash } from 'node:crypto';
import { join } from 'node:path';
import { err, ok, type Result } from '../core/result.js';
import type { Logger } from '../core/logger.js';
import type { Offer } from './file-transfer-codec.js';
import { codeOf, ensureDir, writeFileAtomic } from './fs-safe.js';

export const PARTIAL_STALE_MS = 24 * 60 * 60 * 1000;
/** Partial transfers one sender may have on disk at once. */
export const DEFAULT_MAX_PARTIALS_PER_PEER = 16;
const READ_BACK_CHUNK_BYTES = 1024 * 1024;

interface PartialMeta {
  version: 1;
  from: string;
  from_node_id: number;
  from_hostname: string | null;
  name: string;
  size: number;
  sha256: string;
  offset: number;
  created_at_ms: number;
  updated_at_ms: number;
}

export interface PartialFile {
  readonly key: string;
  readonly path: string;
  /** Bytes in the .part (written, hashed). */
  readonly offset: number;
  /** The checkpointed offset the transfer resumed from. */
  readonly resumedFrom: number;
  append(data: Uint8Array): Promise<Result<void>>;
  /**
   * Make the first `upTo` bytes durable (they were appended before this call) and persist upTo as the resume
   * offset. Appends may continue meanwhile. Resolves with upTo.
   */
  checkpoint(upTo: number): Promise<Result<number>>;
  /** SHA-256 of everything appended (hex); ends the hash, call once. */
  digest(): string;
  /** Close the handle, keep both files (a retry resumes). */
  release(): Promise<void>;
  /** Close and delete both files. */
  discard(): Promise<void>;
  /** Close, keep the .part for the caller to move, delete the .json. */
  detach(): Promise<Result<void>>;
}

export interface PartialStoreOptions {
  logger?: Logger;
  staleMs?: number;
  maxPerPeer?: number;
  nowMs?: () => number;
}

export interface PartialSummary {
  key: string;
  from: string;
  name: string;
  size: number;
  offset: number;
  updated_at_ms: number;
}

function keyOf(fromNodeId: number, offer: Offer): string {
  return createHash('sha256').update(`${fromNodeId}:${offer.sha256}:${offer.size}`).digest('hex').slice(0, 40);
}

function parseMeta(text: string): PartialMeta | null {
  try {
    const v = JSON.parse(text) as Partial<PartialMeta> | null;
    if (!v || typeof v !== 'object') return null;
    const num = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
    if (v.version !== 1 || typeof v.from !== 'string' || !num(v.from_node_id) || typeof v.name !== 'string') return null;
    if (!num(v.size) || typeof v.sha256 !== 'string' || !num(v.offset) || !num(v.created_at_ms) || !num(v.updated_at_ms)) return null;
    return { ...(v as PartialMeta), from_hostname: typeof v.from_hostname === 'string' ? v.from_hostname : null };
  } catch {
    return null;
  }
}

export class PartialStore {
  private readonly staleMs: number;
  private readonly maxPerPeer: number;
  private readonly nowMs: () => number;
  /** Transfers being written now, by key: a second connection for one key takes over (the first is stale). */
  private readonly active = new Map<string, { takeOver(): Promise<void> }>();

  constructor(
    readonly dir: string,
    private readonly opts: PartialStoreOptions = {},
  ) {
    this.staleMs = opts.staleMs ?? PARTIAL_STALE_MS;
    this.maxPerPeer = opts.maxPerPeer ?? DEFAULT_MAX_PARTIALS_PER_PEER;
    this.nowMs = opts.nowMs ?? (() => Date.now());
  }

  /** Every partial on disk (for status and tests). */
  async list(): Promise<PartialSummary[]> {
    let names: string[];
    try {
      names = await fsp.readdir(this.dir);
    } catch {
      return [];
    }
    const out: PartialSummary[] = [];
    for (const n of names) {
      if (!n.endsWith('.json')) continue;
      const key = n.slice(0, -5);
      const m = await fsp.readFile(join(this.dir, n), 'utf8').then(parseMeta, () => null);
      if (m === null) continue;
      out.push({ key, from: m.from, name: m.name, size: m.size, offset: m.offset, updated_at_ms: m.updated_at_ms });
    }
    return out;
  }

  /** Delete partials not touched for staleMs (and orphaned halves). Returns how many went. Does I/O. */
  async sweep(): Promise<number> {
    let names: string[];
    try {
      names = await fsp.readdir(this.dir);
    } catch {
      return 0;
    }
    const now = this.nowMs();
    let removed = 0;
    const keys = new Set(names.map((n) => n.replace(/\.json\.[0-9a-f]+\.tmp$/, '').replace(/\.(part|json)$/, '')));
    for (const key of keys) {
      if (this.active.has(key)) continue;
      let newestMs = 0;
      for (const ext of ['.part', '.json']) {
        try {
          newestMs = Math.max(newestMs, (await fsp.stat(join(this.dir, key + ext))).mtimeMs);
        } catch {
          /* one half missing */
        }
      }
      if (now - newestMs < this.staleMs) continue;
      await fsp.unlink(join(this.dir, `${key}.part`)).catch(() => undefined);
      await fsp.unlink(join(this.dir, `${key}.json`)).catch(() => undefined);
      for (const n of names) if (n.startsWith(`${key}.json.`) && n.endsWith('.tmp')) await fsp.unlink(join(this.dir, n)).catch(() => undefined);
      removed++;
      this.opts.logger?.info({ key }, 'stale partial transfer removed');
    }
    return removed;
  }

  /**
   * Resume the partial of this sender + offer, or start one. Errors: quota_exceeded (too many partials from
   * this sender), internal (disk). Does I/O (reads the resumed bytes back to rebuild the hash).
   */
  async open(from: { addr: string; nodeId: number; hostname: string | null }, offer: Offer): Promise<Result<PartialFile>> {
    const made = await ensureDir(this.dir);
    if (!made.ok) return made;
    await this.sweep();
    const key = keyOf(from.nodeId, offer);
    const prev = this.active.get(key);
    if (prev !== undefined) await prev.takeOver();

    const partPath = join(this.dir, `${key}.part`);
    const metaPath = join(this.dir, `${key}.json`);
    const now = this.nowMs();
    // State-file temps of this key left by a killed daemon (writeFileAtomic's "<file>.<random>.tmp"): no one
    // else writes this key now.
    for (const n of await fsp.readdir(this.dir).catch(() => [] as string[])) {
      if (n.startsWith(`${key}.json.`) && n.endsWith('.tmp')) await fsp.unlink(join(this.dir, n)).catch(() => undefined);
    }
    let meta = await fsp.readFile(metaPath, 'utf8').then(parseMeta, () => null);
    if (meta !== null && (meta.from_node_id !== from.nodeId || meta.sha256 !== offer.sha256 || meta.size !== offer.size)) meta = null;
    if (meta === null) {
      const mine = (await this.list()).filter((p) => p.from === from.addr && p.key !== key);
      if (this.maxPerPeer > 0 && mine.length >= this.maxPerPeer) {
        return err('quota_exceeded', `${mine.length} unfinished transfers from ${from.addr} already (max ${this.maxPerPeer})`, {
          hint: 'finish or wait for the earlier transfers; unfinished ones are deleted after 24 h',
          detail: { store: 'partial', scope: 'peer', kind: 'count', limit: this.maxPerPeer, used: mine.length },
        });
      }
      meta = {
        version: 1,
        from: from.addr,
        from_node_id: from.nodeId,
        from_hostname: from.hostname,
        name: offer.name,
        size: offer.size,
        sha256: offer.sha256,
        offset: 0,
        created_at_ms: now,
        updated_at_ms: now,
      };
    }
    meta = { ...meta, name: offer.name, from: from.addr, from_hostname: from.hostname ?? meta.from_hostname };

    let fh: FileHandle;
    const hash: Hash = createHash('sha256');
    let offset = 0;
    try {
      fh = await fsp.open(partPath, 'a+', 0o600);
      const st = await fh.stat();
      offset = Math.min(meta.offset, st.size, offer.size);
      if (st.size !== offset) await fh.truncate(offset);
      // Rebuild the hash state from the bytes on disk.
      const buf = Buffer.allocUnsafe(READ_BACK_CHUNK_BYTES);
      for (let pos = 0; pos < offset; ) {
        const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, offset - pos), pos);
        if (bytesRead === 0) {
          offset = pos;
          await fh.truncate(offset);
          break;
        }
        hash.update(buf.subarray(0, bytesRead));
        pos += bytesRead;
      }
    } catch (e) {
      return err('internal', `partial file ${partPath}: ${(e as Error).message}`, { cause: e });
    }
    meta.offset = offset;
    meta.updated_at_ms = now;
    const w = await writeFileAtomic(metaPath, JSON.stringify(meta));
    if (!w.ok) {
      await fh.close().catch(() => undefined);
      return w;
    }

    const resumedFrom = offset;
    let isClosed = false;
    let current = meta;
    let pendingWrite: Promise<unknown> = Promise.resolve();
    let pendingCheckpoint: Promise<unknown> = Promise.resolve();
    const close = async (): Promise<void> => {
      if (isClosed) return;
      isClosed = true;
      if (this.active.get(key)?.takeOver === takeOver) this.active.delete(key);
      // A checkpoint still writing the state file would bring it back after a discard or publish.
      await Promise.all([pendingWrite.catch(() => undefined), pendingCheckpoint.catch(() => undefined)]);
      await fh.close().catch(() => undefined);
    };
    let onTakeOver: (() => void) | null = null;
    const takeOver = async (): Promise<void> => {
      onTakeOver?.();
      await close();
    };
    this.active.set(key, { takeOver });
    const doCheckpoint = async (upTo: number): Promise<Result<number>> => {
      if (isClosed) return err('connection_failed', 'transfer taken over by a newer connection');
      const mark = Math.min(upTo, offset);
      try {
        await fh.datasync();
      } catch (e) {
        return err('internal', `sync ${partPath}: ${(e as Error).message}`, { cause: e });
      }
      // Closed meanwhile (released, discarded, published): the state file is not ours to write any more.
      if (isClosed) return err('connection_failed', 'transfer ended during a checkpoint');
      current = { ...current, offset: mark, updated_at_ms: store.nowMs() };
      const r = await writeFileAtomic(metaPath, JSON.stringify(current));
      return r.ok ? ok(mark) : r;
    };
    const store = this;
    const file: PartialFile & { onTakeOver(fn: () => void): void } = {
      key,
      path: partPath,
      get offset() {
        return offset;
      },
      resumedFrom,
      onTakeOver(fn) {
        onTakeOver = fn;
      },
      async append(data) {
        if (isClosed) return err('connection_failed', 'transfer taken over by a newer connection');
        try {
          // 'a+' appends: the write lands at the end, which is `offset` (we truncated to it).
          const p = fh.write(data, 0, data.length, null);
          pendingWrite = p;
          await p;
        } catch (e) {
          return err('internal', `write ${partPath}: ${(e as Error).message}`, { cause: e });
        }
        hash.update(data);
        offset += data.length;
        return ok();
      },
      checkpoint(upTo) {
        const p = doCheckpoint(upTo);
        pendingCheckpoint = p;
        return p;
      },
      digest: () => hash.digest('hex'),
      release: close,
      async discard() {
        await close();
        await fsp.unlink(partPath).catch(() => undefined);
        await fsp.unlink(metaPath).catch(() => undefined);
      },
      async detach() {
        try {
          await fh.sync();
        } catch (e) {
          return err('internal', `sync ${partPath}: ${(e as Error).message}`, { cause: e });
        }
        await close();
        try {
          await fsp.unlink(metaPath);
        } catch (e) {
          if (codeOf(e) !== 'ENOENT') return err('internal', `remove ${metaPath}: ${(e as Error).message}`, { cause: e });
        }
        return ok();
      },
    };
    return ok(file);
  }
}

/** The hook a PartialFile from PartialStore.open has: called when a newer connection takes the transfer over. */
export function onTakeOver(f: PartialFile, fn: () => void): void {
  (f as PartialFile & { onTakeOver?(fn: () => void): void }).onTakeOver?.(fn);
}
