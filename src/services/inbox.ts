// The inbox: one JSON file per message received on port 1001, in <home>/inbox/.
//
// The original writes {"type":"TEXT","from":…,"data":string(payload),"bytes":n,"received_at":RFC3339}
// to inbox/<TYPE>-<YYYYMMDD-HHMMSS.mmm>.json (TeoSlayer/pilotprotocol, pkg/daemon/services.go,
// saveInboxMessage). We write the contract's InboxMessage fields plus the original's `bytes`, keep the
// same file naming with a random id appended (the original overwrites two messages of the same type in
// the same millisecond), and read the original's files too (type upper-case, no id).
// Binary payloads are base64 with "encoding":"base64" (the original's string(payload) is lossy in JSON).
//
// A message is never held whole: its payload streams into an exclusive, no-follow temp file as it arrives,
// encoded on the fly (JSON string escaping or base64), with `data` as the record's last field; the file gets
// its final name (rename) only when complete and is deleted on abort. Storage quotas (quota.ts) are checked
// before the first byte (declared size) and while writing (actual stored size). Listing is paged: files sort
// by the stamp in their name (no need to open them), `since` is the last key seen.
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { StringDecoder } from 'node:string_decoder';
import { err, ok, type Result } from '../core/result.js';
import type { Logger } from '../core/logger.js';
import type { InboxMessage, MessageType, VirtualAddrText } from '../node/api.js';
import { DEFAULT_STORAGE_QUOTAS } from '../node/daemon-options.js';
import { codeOf, createExclusive, ensureDir, moveAside, openForScan, sweepStaleTemps, tempNameFor } from './fs-safe.js';
import { inboxLimitsOf, StorageQuota, type QuotaLimits, type Reservation, type StoredUsage } from './quota.js';

export type InboxMessageType = Exclude<MessageType, 'file'>;

/** What list() returns: the contract's fields, the original's `bytes`, and how `data` is encoded. */
export interface StoredInboxMessage extends InboxMessage {
  bytes: number;
  encoding: 'utf8' | 'base64';
}

/** A stored message without its payload (what a streamed save reports). */
export type InboxEntryMeta = Omit<StoredInboxMessage, 'data'>;

export interface IncomingMessageMeta {
  from: VirtualAddrText;
  from_hostname: string | null;
  type: InboxMessageType;
  /** Payload bytes the sender declared (the frame length). */
  bytes: number;
}

export interface IncomingMessage extends Omit<IncomingMessageMeta, 'bytes'> {
  payload: Uint8Array;
}

/** One message being received: write() payload chunks in order (exactly `bytes` in all), then commit() or abort(). */
export interface IncomingInboxMessage {
  write(chunk: Uint8Array): Promise<Result<void>>;
  commit(): Promise<Result<InboxEntryMeta>>;
  abort(): Promise<void>;
}

export interface InboxOptions {
  logger?: Logger;
  now?: () => Date;
  /** Defaults: DEFAULT_STORAGE_QUOTAS' inbox limits. */
  quota?: Partial<QuotaLimits>;
  /** Called once a message is stored (the node's message.received event); must not throw or block. */
  onStored?: (m: InboxEntryMeta) => void;
}

export interface InboxPageOptions {
  /** At most this many messages (default: all). */
  limit?: number;
  /** Stop adding messages once their stored size passes this (at least one is always returned). */
  maxBytes?: number;
  /** Only messages after this cursor (a page's next_since) or received at/after this RFC 3339 time. */
  since?: string;
}

export interface InboxPage {
  messages: StoredInboxMessage[];
  /** Cursor for the next page: pass it as `since`. null when the page is empty. */
  next_since: string | null;
  has_more: boolean;
}

/** Listing order key of a file name: the name without `TYPE-` and `.json` (= the stamp, then the id). */
export function inboxKeyOf(fileName: string): string {
  return fileName.replace(/\.json$/, '').replace(/^[A-Z]+-/, '');
}

/**
 * A `since` value: a cursor (a key, messages strictly after it) or an RFC 3339 time (messages at or after it).
 * Errors: invalid_argument.
 */
export function parseSince(since: string): Result<{ key: string; isInclusive: boolean }> {
  if (/^\d{4}-\d{2}-\d{2}T/.test(since)) {
    const t = Date.parse(since);
    if (Number.isNaN(t)) return err('invalid_argument', `invalid --since time '${since}'`, { hint: 'an RFC 3339 time like 2026-01-02T03:04:05Z, or a next_since value' });
    return ok({ key: fileStamp(new Date(t)), isInclusive: true });
  }
  if (since.length > 256 || !/^[\x21-\x7e]*$/.test(since)) {
    return err('invalid_argument', 'invalid --since cursor', { hint: 'pass the next_since value of the previous page, or an RFC 3339 time' });
  }
  return ok({ key: since, isInclusive: false });
}

/** Streaming JSON-string / base64 encoder for one payload; chunk boundaries may split characters. */
class PayloadEncoder {
  private readonly decoder = new StringDecoder('utf8');
  private carry: Buffer = Buffer.alloc(0);

  constructor(private readonly isBase64: boolean) {}

  /** The encoded text of `chunk` (JSON-escaped, without quotes). */
  push(chunk: Uint8Array): string {
    const b = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (!this.isBase64) return escapeJsonText(this.decoder.write(b));
    const all = this.carry.length ? Buffer.concat([this.carry, b]) : b;
    const whole = all.length - (all.length % 3);
    this.carry = Buffer.from(all.subarray(whole));
    return all.subarray(0, whole).toString('base64');
  }

  end(): string {
    if (!this.isBase64) return escapeJsonText(this.decoder.end());
    const tail = this.carry.toString('base64');
    this.carry = Buffer.alloc(0);
    return tail;
  }
}

function escapeJsonText(s: string): string {
  return s === '' ? '' : JSON.stringify(s).slice(1, -1);
}

/** Bytes read from the front of a message file to learn its sender (quota scan); `from` precedes `data`. */
const HEAD_BYTES = 1024;
/** Temp files untouched this long were left by a crash (see sweepStaleTemps). */
export const STALE_TEMP_MS = 60 * 60 * 1000;
const FROM_RE = /"from":"((?:[^"\\]|\\.)*)"/;

/** RFC 3339 in UTC with whole seconds, the shape of the original's time.RFC3339. */
export function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The original's "20060102-150405.000" stamp (UTC here; the original used local time). */
export function fileStamp(d: Date): string {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return (
    `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}-` +
    `${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}.${p(d.getUTCMilliseconds(), 3)}`
  );
}

const MESSAGE_TYPES: readonly InboxMessageType[] = ['text', 'json', 'binary'];

function parseRecord(fileName: string, value: unknown): StoredInboxMessage | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const v = value as Record<string, unknown>;
  if (typeof v.data !== 'string' || typeof v.type !== 'string') return null;
  const type = v.type.toLowerCase() as InboxMessageType;
  if (!MESSAGE_TYPES.includes(type)) return null;
  const encoding = v.encoding === 'base64' ? 'base64' : 'utf8';
  const computedBytes = encoding === 'base64' ? Buffer.from(v.data, 'base64').length : Buffer.byteLength(v.data, 'utf8');
  const size = typeof v.size === 'number' ? v.size : typeof v.bytes === 'number' ? v.bytes : computedBytes;
  return {
    id: typeof v.id === 'string' ? v.id : fileName.replace(/\.json$/, ''),
    from: typeof v.from === 'string' ? v.from : '',
    from_hostname: typeof v.from_hostname === 'string' ? v.from_hostname : null,
    type,
    data: v.data,
    size,
    bytes: typeof v.bytes === 'number' ? v.bytes : size,
    encoding,
    received_at: typeof v.received_at === 'string' ? v.received_at : '',
  };
}

export class Inbox {
  private readonly logger: Logger | undefined;
  private readonly onStored: ((m: InboxEntryMeta) => void) | undefined;
  private readonly now: () => Date;
  readonly quota: StorageQuota;

  constructor(
    readonly dir: string,
    opts: InboxOptions = {},
  ) {
    this.logger = opts.logger;
    this.now = opts.now ?? (() => new Date());
    this.onStored = opts.onStored;
    this.quota = new StorageQuota(
      'inbox',
      'messages',
      { ...inboxLimitsOf(DEFAULT_STORAGE_QUOTAS), ...opts.quota },
      () => this.scanUsage(),
    );
  }

  /**
   * Start receiving one message: reserves quota for its declared size and opens the temp file. Errors:
   * quota_exceeded (nothing written), internal (disk). Does I/O.
   */
  async begin(m: IncomingMessageMeta): Promise<Result<IncomingInboxMessage>> {
    const id = randomUUID();
    const isBinary = m.type === 'binary';
    const fixed = {
      id,
      type: m.type,
      from: m.from,
      from_hostname: m.from_hostname,
      encoding: isBinary ? ('base64' as const) : ('utf8' as const),
      bytes: m.bytes,
      size: m.bytes,
    };
    // The sender first (the quota scan reads it from the head), data, then the time it was complete.
    const head = Buffer.from(JSON.stringify(fixed).slice(0, -1) + ',"data":"', 'utf8');
    const tailOf = (receivedAt: string): Buffer => Buffer.from(`","received_at":${JSON.stringify(receivedAt)}}`, 'utf8');
    const tailBytes = tailOf(rfc3339(this.now())).length;
    const minData = isBinary ? 4 * Math.ceil(m.bytes / 3) : m.bytes;
    const reserved = await this.quota.reserve(m.from, head.length + minData + tailBytes);
    if (!reserved.ok) return reserved;
    const quota: Reservation = reserved.value;
    const made = await ensureDir(this.dir);
    if (!made.ok) {
      quota.release();
      return made;
    }
    const tmpPath = tempNameFor(join(this.dir, `.incoming-${id}`));
    let fh: FileHandle;
    try {
      fh = await createExclusive(tmpPath);
    } catch (e) {
      quota.release();
      return err('internal', `cannot create ${tmpPath}: ${(e as Error).message}`, { cause: e, hint: 'check free disk space and permissions' });
    }
    const encoder = new PayloadEncoder(isBinary);
    let stored = 0;
    let isDone = false;
    const abort = async (): Promise<void> => {
      if (isDone) return;
      isDone = true;
      quota.release();
      await fh.close().catch(() => undefined);
      await fsp.unlink(tmpPath).catch(() => undefined);
    };
    /** Write `b`, growing the reservation first when the stored size passes what was reserved. */
    const put = async (b: Buffer): Promise<Result<void>> => {
      if (b.length === 0) return ok();
      const over = stored + b.length + tailBytes - quota.bytes;
      if (over > 0) {
        const g = quota.grow(over);
        if (!g.ok) {
          await abort();
          return g;
        }
      }
      try {
        await fh.write(b);
      } catch (e) {
        await abort();
        return err('internal', `cannot write ${tmpPath}: ${(e as Error).message}`, { cause: e, hint: 'check free disk space' });
      }
      stored += b.length;
      return ok();
    };
    const started = await put(head);
    if (!started.ok) return started;
    const self = this;
    return ok({
      async write(chunk: Uint8Array): Promise<Result<void>> {
        if (isDone) return err('internal', 'message already finished');
        return put(Buffer.from(encoder.push(chunk), 'utf8'));
      },
      async commit(): Promise<Result<InboxEntryMeta>> {
        if (isDone) return err('internal', 'message already finished');
        const at = self.now();
        const meta: InboxEntryMeta = { ...fixed, received_at: rfc3339(at) };
        const last = await put(Buffer.concat([Buffer.from(encoder.end(), 'utf8'), tailOf(meta.received_at)]));
        if (!last.ok) return last;
        try {
          await fh.sync();
          await fh.close();
        } catch (e) {
          await abort();
          return err('internal', `cannot write ${tmpPath}: ${(e as Error).message}`, { cause: e, hint: 'check free disk space' });
        }
        const placed = await self.place(tmpPath, m.type, at);
        if (!placed.ok) {
          await abort();
          return placed;
        }
        isDone = true;
        quota.commit();
        self.onStored?.(meta);
        return ok(meta);
      },
      abort,
    });
  }

  /**
   * Give a finished temp file its name, `<TYPE>-<stamp>-<seq>.json`, stamped when it was complete. Names are
   * handed out and renamed one at a time with a per-process sequence, so listing keys grow in the order
   * messages appear: a pager holding `since` never misses one that lands after its page.
   */
  private place(tmpPath: string, type: InboxMessageType, at: Date): Promise<Result<void>> {
    const run = async (): Promise<Result<void>> => {
      // Never behind the previous name, even if this message's clock read came first (its fsync took longer).
      if (at.getTime() > this.lastPlacedMs) this.lastPlacedMs = at.getTime();
      this.seq = (this.seq + 1) >>> 0;
      const name = `${type.toUpperCase()}-${fileStamp(new Date(this.lastPlacedMs))}-${this.seq.toString(16).padStart(8, '0')}.json`;
      try {
        await fsp.rename(tmpPath, join(this.dir, name));
        return ok();
      } catch (e) {
        return err('internal', `cannot write ${name}: ${(e as Error).message}`, { cause: e, hint: 'check free disk space and permissions' });
      }
    };
    const p = this.placing.then(run);
    this.placing = p.then(() => undefined);
    return p;
  }
  private seq = 0;
  private lastPlacedMs = -Infinity;
  private placing: Promise<void> = Promise.resolve();

  /** Persist one message held in memory (tests, small callers): begin + write + commit. Errors: as begin. */
  async save(m: IncomingMessage): Promise<Result<StoredInboxMessage>> {
    const b = await this.begin({ from: m.from, from_hostname: m.from_hostname, type: m.type, bytes: m.payload.length });
    if (!b.ok) return b;
    const w = await b.value.write(m.payload);
    if (!w.ok) return w;
    const c = await b.value.commit();
    if (!c.ok) return c;
    const payload = Buffer.from(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength);
    return ok({ ...c.value, data: m.type === 'binary' ? payload.toString('base64') : payload.toString('utf8') });
  }

  /** Message file names (not temp files, not moved-aside ones), in listing order. */
  private async names(): Promise<Result<string[]>> {
    let names: string[];
    try {
      names = await fsp.readdir(this.dir);
    } catch (e) {
      if (codeOf(e) === 'ENOENT') return ok([]);
      return err('internal', `cannot read ${this.dir}: ${(e as Error).message}`, { cause: e });
    }
    const keyed = names.filter((n) => n.endsWith('.json') && !n.startsWith('.')).map((n) => ({ n, k: inboxKeyOf(n) }));
    keyed.sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : a.n < b.n ? -1 : a.n > b.n ? 1 : 0));
    return ok(keyed.map((x) => x.n));
  }

  /**
   * One page of messages, oldest first. A file that does not parse is renamed `<name>.corrupt` (never over
   * another file) and skipped with a warning. Errors: invalid_argument (since), internal. Does I/O.
   */
  async page(opts: InboxPageOptions = {}): Promise<Result<InboxPage>> {
    const limit = opts.limit ?? Infinity;
    const maxBytes = opts.maxBytes ?? Infinity;
    let from: { key: string; isInclusive: boolean } | null = null;
    if (opts.since !== undefined && opts.since !== '') {
      const s = parseSince(opts.since);
      if (!s.ok) return s;
      from = s.value;
    }
    const all = await this.names();
    if (!all.ok) return all;
    const names = from === null ? all.value : all.value.filter((n) => (from.isInclusive ? inboxKeyOf(n) >= from.key : inboxKeyOf(n) > from.key));
    const messages: StoredInboxMessage[] = [];
    let usedBytes = 0;
    let lastKey: string | null = null;
    let i = 0;
    for (; i < names.length && messages.length < limit; i++) {
      const name = names[i]!;
      const path = join(this.dir, name);
      let text: string;
      try {
        const st = await fsp.lstat(path); // a symlink planted in the inbox is not followed
        if (!st.isFile()) continue;
        if (messages.length > 0 && usedBytes + st.size > maxBytes) break;
        text = await fsp.readFile(path, 'utf8');
      } catch (e) {
        if (codeOf(e) === 'ENOENT') continue; // cleared or moved meanwhile
        this.logger?.warn({ path, err: (e as Error).message }, 'inbox: unreadable message skipped');
        continue;
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      const msg = parseRecord(name, parsed);
      lastKey = inboxKeyOf(name);
      if (msg === null) {
        const moved = await moveAside(path, `${path}.corrupt`);
        this.logger?.warn({ path, kept_as: moved.ok ? moved.value : null }, 'inbox: corrupt message file moved aside');
        continue;
      }
      usedBytes += text.length;
      messages.push(msg);
    }
    return ok({ messages, next_since: lastKey, has_more: i < names.length });
  }

  /** All readable messages, oldest first (see page()). Errors: internal. Does I/O. */
  async list(): Promise<Result<StoredInboxMessage[]>> {
    const p = await this.page();
    return p.ok ? ok(p.value.messages) : p;
  }

  /** What each stored message uses, for the quota: file size, sender from the file's head. */
  private async scanUsage(): Promise<Result<StoredUsage[]>> {
    // An unfinished message is rewritten at least every idle timeout (60 s); one untouched for an hour was
    // left by a crash.
    await sweepStaleTemps(this.dir, (n) => n.startsWith('.incoming-') && n.endsWith('.tmp'), STALE_TEMP_MS, Date.now());
    const names = await this.names();
    if (!names.ok) return names;
    const out: StoredUsage[] = [];
    const head = Buffer.alloc(HEAD_BYTES);
    for (const name of names.value) {
      let fh: FileHandle | undefined;
      try {
        fh = await openForScan(join(this.dir, name));
        const st = await fh.stat();
        if (!st.isFile()) continue;
        const { bytesRead } = await fh.read(head, 0, HEAD_BYTES, 0);
        const m = FROM_RE.exec(head.subarray(0, bytesRead).toString('utf8'));
        out.push({ peer: m ? m[1]! : '', bytes: st.size });
      } catch {
        /* removed meanwhile, or unreadable: not counted */
      } finally {
        await fh?.close().catch(() => undefined);
      }
    }
    return ok(out);
  }

  /** Remove every file in the inbox (as the original's `inbox --clear`); returns how many. Does I/O. */
  async clear(): Promise<Result<{ cleared: number }>> {
    let entries: import('node:fs').Dirent[];
    try {
      entries = await fsp.readdir(this.dir, { withFileTypes: true });
    } catch (e) {
      if (codeOf(e) === 'ENOENT') return ok({ cleared: 0 });
      return err('internal', `cannot read ${this.dir}: ${(e as Error).message}`, { cause: e });
    }
    let cleared = 0;
    this.quota.invalidate();
    for (const e of entries) {
      if (e.isDirectory() || e.name.endsWith('.tmp')) continue; // .tmp: a save in progress
      try {
        await fsp.unlink(join(this.dir, e.name));
        cleared++;
      } catch (x) {
        if (codeOf(x) !== 'ENOENT') return err('internal', `cannot remove ${e.name}: ${(x as Error).message}`, { cause: x });
      }
    }
    return ok({ cleared });
  }
}
