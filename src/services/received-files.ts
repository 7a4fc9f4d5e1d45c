// Files received on port 1001, in <home>/received/.
//
// The original keeps filepath.Base(name) and always appends a timestamp, "<base>-<YYYYMMDD-HHMMSS.mmm><ext>",
// holding the whole file in memory (TeoSlayer/pilotprotocol, pkg/daemon/services.go, saveReceivedFile).
// We keep the sender's (sanitised) name when it is free and add "-1", "-2", … otherwise; data streams
// to a temp file while SHA-256 is computed, and appears under its final name only when complete, via
// link(2) so an existing file is never replaced. Sender, hash and time go to a sidecar
// received/.pilot-meta/<name>.json; the original's `received` skips directories, so it still lists ours.
// The temp file is created exclusive and no-follow; storage quotas (quota.ts) are checked against the declared
// size before the first byte is written.
import { promises as fsp, type Dirent } from 'node:fs';
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { join } from 'node:path';
import { err, ok, type Result } from '../core/result.js';
import type { Logger } from '../core/logger.js';
import type { ReceivedFile, VirtualAddrText } from '../node/api.js';
import { DEFAULT_STORAGE_QUOTAS } from '../node/daemon-options.js';
import { codeOf, createExclusive, ensureDir, moveNoClobber, sweepStaleTemps, writeFileAtomic } from './fs-safe.js';
import { rfc3339, STALE_TEMP_MS } from './inbox.js';
import { receivedLimitsOf, StorageQuota, type QuotaLimits, type StoredUsage } from './quota.js';

export const META_DIR_NAME = '.pilot-meta';
const PARTIAL_PREFIX = 'partial-';
const MAX_NAME_BYTES = 200;
const MAX_SUFFIX_TRIES = 10_000;

/** What list() returns: the contract's fields plus the original's `bytes` and `modified`. */
export interface StoredReceivedFile extends ReceivedFile {
  bytes: number;
  modified: string;
  from_hostname: string | null;
}

function truncateUtf8(s: string, maxBytes: number): string {
  if (Buffer.byteLength(s, 'utf8') <= maxBytes) return s;
  let out = '';
  let used = 0;
  for (const ch of s) {
    const n = Buffer.byteLength(ch, 'utf8');
    if (used + n > maxBytes) break;
    out += ch;
    used += n;
  }
  return out;
}

function splitExt(name: string): { base: string; ext: string } {
  const dot = name.lastIndexOf('.');
  if (dot <= 0) return { base: name, ext: '' };
  return { base: name.slice(0, dot), ext: name.slice(dot) };
}

/**
 * A name safe to create inside received/: last path component only (either slash), no control or
 * bidi/format characters, no leading dots (so never ".", "..", hidden files or our meta dir), at most 200 bytes
 * keeping the extension; "file" if nothing is left.
 */
export function sanitizeFilename(raw: string): string {
  let name = raw.replace(/\\/g, '/');
  name = name.slice(name.lastIndexOf('/') + 1);
  // Controls, and format characters such as U+202E (which would show "invoice\u202efdp.exe" as
  // "invoiceexe.pdf" in a file manager), zero-width characters and separators.
  name = name.replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu, '');
  name = name.replace(/^[.\s]+/, '').replace(/\s+$/, '');
  if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) {
    const { base, ext } = splitExt(name);
    const keepExt = Buffer.byteLength(ext, 'utf8') <= 32 ? ext : '';
    name = truncateUtf8(keepExt ? base : name, MAX_NAME_BYTES - Buffer.byteLength(keepExt, 'utf8')) + keepExt;
  }
  return name === '' ? 'file' : name;
}

export function suffixedName(name: string, n: number): string {
  if (n === 0) return name;
  const { base, ext } = splitExt(name);
  return `${base}-${n}${ext}`;
}

interface Sidecar {
  name: string;
  from: string;
  from_hostname: string | null;
  sha256: string;
  size: number;
  received_at: string;
}

export interface ReceivedFilesOptions {
  logger?: Logger;
  now?: () => Date;
  /** Defaults: DEFAULT_STORAGE_QUOTAS' received-file limits. */
  quota?: Partial<QuotaLimits>;
  /** Called once a file is stored (the node's file.received event); must not throw or block. */
  onStored?: (f: StoredReceivedFile) => void;
}

/** One file being received. write() chunks in order, then commit() or abort(). */
export interface IncomingFile {
  readonly bytesWritten: number;
  write(chunk: Uint8Array): Promise<Result<void>>;
  commit(): Promise<Result<StoredReceivedFile>>;
  abort(): Promise<void>;
}

export class ReceivedFiles {
  private readonly logger: Logger | undefined;
  private readonly onStored: ((f: StoredReceivedFile) => void) | undefined;
  private readonly now: () => Date;
  readonly quota: StorageQuota;

  constructor(
    readonly dir: string,
    opts: ReceivedFilesOptions = {},
  ) {
    this.logger = opts.logger;
    this.now = opts.now ?? (() => new Date());
    this.onStored = opts.onStored;
    this.quota = new StorageQuota(
      'received files',
      'files',
      { ...receivedLimitsOf(DEFAULT_STORAGE_QUOTAS), ...opts.quota },
      () => this.scanUsage(),
    );
  }

  private async scanUsage(): Promise<Result<StoredUsage[]>> {
    await sweepStaleTemps(this.metaDir, (n) => n.startsWith(PARTIAL_PREFIX), STALE_TEMP_MS, Date.now());
    const l = await this.list();
    return l.ok ? ok(l.value.map((f) => ({ peer: f.from, bytes: f.size }))) : l;
  }

  private get metaDir(): string {
    return join(this.dir, META_DIR_NAME);
  }

  /**
   * Open a temp file for `requestedName` from `from`, `declaredBytes` long (writes beyond it are refused).
   * Errors: quota_exceeded (nothing written), internal (disk). Does I/O.
   */
  async begin(requestedName: string, from: VirtualAddrText, fromHostname: string | null, declaredBytes: number): Promise<Result<IncomingFile>> {
    const reserved = await this.quota.reserve(from, declaredBytes);
    if (!reserved.ok) return reserved;
    const quota = reserved.value;
    const made = await ensureDir(this.metaDir);
    if (!made.ok) {
      quota.release();
      return made;
    }
    const tmpPath = join(this.metaDir, `${PARTIAL_PREFIX}${randomBytes(8).toString('hex')}`);
    let fh: fsp.FileHandle;
    try {
      fh = await createExclusive(tmpPath);
    } catch (e) {
      quota.release();
      return err('internal', `cannot create ${tmpPath}: ${(e as Error).message}`, { cause: e });
    }
    const hash: Hash = createHash('sha256');
    const name = sanitizeFilename(requestedName);
    let bytesWritten = 0;
    let isDone = false;
    const abort = async (): Promise<void> => {
      if (isDone) return;
      isDone = true;
      quota.release();
      await fh.close().catch(() => undefined);
      await fsp.unlink(tmpPath).catch(() => undefined);
    };
    const self = this;
    return ok({
      get bytesWritten() {
        return bytesWritten;
      },
      async write(chunk: Uint8Array): Promise<Result<void>> {
        if (isDone) return err('internal', 'file already finished');
        if (bytesWritten + chunk.length > declaredBytes) {
          await abort();
          return err('internal', `file longer than its declared ${declaredBytes} bytes`);
        }
        try {
          await fh.write(chunk);
        } catch (e) {
          await abort();
          return err('internal', (e as Error).message, { cause: e });
        }
        hash.update(chunk);
        bytesWritten += chunk.length;
        return ok();
      },
      async commit(): Promise<Result<StoredReceivedFile>> {
        if (isDone) return err('internal', 'file already finished');
        isDone = true;
        try {
          await fh.sync();
          await fh.close();
        } catch (e) {
          quota.release();
          await fh.close().catch(() => undefined);
          await fsp.unlink(tmpPath).catch(() => undefined);
          return err('internal', (e as Error).message, { cause: e });
        }
        const placed = await self.place(tmpPath, name);
        if (!placed.ok) {
          quota.release();
          await fsp.unlink(tmpPath).catch(() => undefined);
          return placed;
        }
        quota.commit();
        const at = self.now();
        const meta: Sidecar = {
          name: placed.value,
          from,
          from_hostname: fromHostname,
          sha256: hash.digest('hex'),
          size: bytesWritten,
          received_at: rfc3339(at),
        };
        const w = await writeFileAtomic(join(self.metaDir, `${placed.value}.json`), JSON.stringify(meta));
        if (!w.ok) self.logger?.warn({ name: placed.value, err: w.error.message }, 'received: sidecar not written');
        const stored: StoredReceivedFile = { ...meta, path: join(self.dir, placed.value), bytes: bytesWritten, modified: meta.received_at };
        self.onStored?.(stored);
        return ok(stored);
      },
      abort,
    });
  }

  /**
   * Move a finished, verified file (a resumable transfer's partial, on the same file system) into received/
   * under a free name and write its sidecar. The caller holds the quota reservation. Errors: internal. Does I/O.
   */
  async publish(
    srcPath: string,
    f: { requestedName: string; from: VirtualAddrText; fromHostname: string | null; sha256: string; size: number },
  ): Promise<Result<StoredReceivedFile>> {
    const made = await ensureDir(this.metaDir);
    if (!made.ok) return made;
    const placed = await this.place(srcPath, sanitizeFilename(f.requestedName));
    if (!placed.ok) return placed;
    const at = this.now();
    const meta: Sidecar = { name: placed.value, from: f.from, from_hostname: f.fromHostname, sha256: f.sha256, size: f.size, received_at: rfc3339(at) };
    const w = await writeFileAtomic(join(this.metaDir, `${placed.value}.json`), JSON.stringify(meta));
    if (!w.ok) this.logger?.warn({ name: placed.value, err: w.error.message }, 'received: sidecar not written');
    const stored: StoredReceivedFile = { ...meta, path: join(this.dir, placed.value), bytes: f.size, modified: meta.received_at };
    this.onStored?.(stored); // a resumable transfer's file is received now (webhooks: file.received)
    return ok(stored);
  }

  private async place(tmpPath: string, name: string): Promise<Result<string>> {
    for (let i = 0; i < MAX_SUFFIX_TRIES; i++) {
      const candidate = suffixedName(name, i);
      const r = await moveNoClobber(tmpPath, join(this.dir, candidate));
      if (!r.ok) return r;
      if (r.value) return ok(candidate);
    }
    return err('internal', `no free name for ${name}`);
  }

  /** Every file in received/ (not directories), oldest first. Errors: internal. Does I/O. */
  async list(): Promise<Result<StoredReceivedFile[]>> {
    let entries: Dirent[];
    try {
      entries = await fsp.readdir(this.dir, { withFileTypes: true });
    } catch (e) {
      if (codeOf(e) === 'ENOENT') return ok([]);
      return err('internal', `cannot read ${this.dir}: ${(e as Error).message}`, { cause: e });
    }
    const out: StoredReceivedFile[] = [];
    for (const e of entries) {
      if (e.isDirectory()) continue;
      const path = join(this.dir, e.name);
      let size: number;
      let modified: string;
      try {
        const st = await fsp.stat(path);
        if (st.isDirectory()) continue;
        size = st.size;
        modified = rfc3339(st.mtime);
      } catch {
        continue; // removed meanwhile
      }
      const meta = await this.readSidecar(e.name);
      out.push({
        name: e.name,
        path,
        size,
        bytes: size,
        modified,
        from: meta?.from ?? '',
        from_hostname: meta?.from_hostname ?? null,
        sha256: meta?.sha256 ?? '',
        received_at: meta?.received_at ?? modified,
      });
    }
    out.sort((a, b) => (a.received_at < b.received_at ? -1 : a.received_at > b.received_at ? 1 : a.name < b.name ? -1 : 1));
    return ok(out);
  }

  /**
   * One page of received files, oldest first: at most `limit` (default all), only those received at/after an
   * RFC 3339 `since` time, or strictly after a previous page's `next_since` cursor ("<received_at>/<name>").
   * Errors: invalid_argument (since), internal. Does I/O.
   */
  async page(opts: { limit?: number; since?: string } = {}): Promise<Result<ReceivedPage>> {
    let after: { at: string; name: string; isInclusive: boolean } | null = null;
    if (opts.since !== undefined && opts.since !== '') {
      const s = parseReceivedSince(opts.since);
      if (!s.ok) return s;
      after = s.value;
    }
    const l = await this.list();
    if (!l.ok) return l;
    const all = after === null ? l.value : l.value.filter((f) => isAfter(f, after!));
    const limit = opts.limit ?? all.length;
    const files = all.slice(0, limit);
    const last = files[files.length - 1];
    return ok({ files, has_more: all.length > files.length, next_since: last === undefined ? null : `${last.received_at}/${last.name}` });
  }

  private async readSidecar(name: string): Promise<Sidecar | null> {
    try {
      const v = JSON.parse(await fsp.readFile(join(this.metaDir, `${name}.json`), 'utf8')) as Partial<Sidecar> | null;
      if (!v || typeof v !== 'object' || typeof v.sha256 !== 'string' || typeof v.from !== 'string') return null;
      return {
        name,
        from: v.from,
        from_hostname: typeof v.from_hostname === 'string' ? v.from_hostname : null,
        sha256: v.sha256,
        size: typeof v.size === 'number' ? v.size : 0,
        received_at: typeof v.received_at === 'string' ? v.received_at : '',
      };
    } catch {
      return null;
    }
  }

  /** Remove every received file and its sidecar (transfers in progress are left alone). Does I/O. */
  async clear(): Promise<Result<{ cleared: number }>> {
    let entries: Dirent[];
    try {
      entries = await fsp.readdir(this.dir, { withFileTypes: true });
    } catch (e) {
      if (codeOf(e) === 'ENOENT') return ok({ cleared: 0 });
      return err('internal', `cannot read ${this.dir}: ${(e as Error).message}`, { cause: e });
    }
    let cleared = 0;
    this.quota.invalidate();
    for (const e of entries) {
      if (e.isDirectory()) continue;
      try {
        await fsp.unlink(join(this.dir, e.name));
        cleared++;
      } catch (x) {
        if (codeOf(x) !== 'ENOENT') return err('internal', `cannot remove ${e.name}: ${(x as Error).message}`, { cause: x });
      }
      await fsp.unlink(join(this.metaDir, `${e.name}.json`)).catch(() => undefined);
    }
    return ok({ cleared });
  }
}

export interface ReceivedPage {
  files: StoredReceivedFile[];
  has_more: boolean;
  /** Pass as `since` for the next page; null when the page is empty. */
  next_since: string | null;
}

function isAfter(f: { received_at: string; name: string }, a: { at: string; name: string; isInclusive: boolean }): boolean {
  if (a.isInclusive) return Date.parse(f.received_at) >= Date.parse(a.at);
  return f.received_at > a.at || (f.received_at === a.at && f.name > a.name);
}

/** `since`: an RFC 3339 time (inclusive) or a next_since cursor "<received_at>/<name>" (exclusive). */
export function parseReceivedSince(since: string): Result<{ at: string; name: string; isInclusive: boolean }> {
  const slash = since.indexOf('/');
  if (slash < 0) {
    if (!/^\d{4}-\d{2}-\d{2}T/.test(since) || Number.isNaN(Date.parse(since))) {
      return err('invalid_argument', `invalid --since '${since}'`, { hint: 'an RFC 3339 time like 2026-01-02T03:04:05Z, or the next_since of a previous page' });
    }
    // received_at is UTC to the second: compare in that form (an offset or milliseconds would mis-sort as text,
    // and a file received later in the same second as `since` is at/after it).
    return ok({ at: rfc3339(new Date(Date.parse(since))), name: '', isInclusive: true });
  }
  const at = since.slice(0, slash);
  if (Number.isNaN(Date.parse(at)) || since.length > 1024) {
    return err('invalid_argument', 'invalid --since cursor', { hint: 'pass the next_since value of the previous page, or an RFC 3339 time' });
  }
  return ok({ at, name: since.slice(slash + 1), isInclusive: false });
}
