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
//
// Issue 14: a message carries the id its sender learnt from the META ack and, for a reply, `reply_to`; the id
// ends the file name (`<TYPE>-<stamp>-<seq>-<id>.json`) so `inbox read ID` needs no file opened. Queries
// (--from, --before, --latest, read ID, reply waits) are decided in inbox-query.ts; filters read only each
// file's head (the fields before `data`).
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
import {
  compileFilters,
  fileStamp,
  hasFilters,
  headFromPrefix,
  idInName,
  inboxKeyOf,
  matchesHead,
  parseBound,
  selectNames,
  type CompiledFilters,
  type InboxFilters,
  type MessageHead,
} from './inbox-query.js';

export { fileStamp, inboxKeyOf } from './inbox-query.js';

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
  /** The id announced in the sender's META ack (default: a new one). */
  id?: string;
  /** The message this one answers (from META). */
  reply_to?: string | null;
}

export interface IncomingMessage extends Omit<IncomingMessageMeta, 'bytes' | 'id'> {
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

export interface InboxPageOptions extends InboxFilters {
  /** At most this many messages (default: all). */
  limit?: number;
  /** Stop adding messages once their stored size passes this (at least one is always returned). */
  maxBytes?: number;
  /** Only messages after this cursor (a page's next_since) or received at/after this RFC 3339 time. */
  since?: string;
  /** Only messages before this cursor (a --latest page's next_before) or received before this RFC 3339 time. */
  before?: string;
  /** Newest first; the cursor for the next page is then `next_before`. */
  isLatest?: boolean;
  /** With filters: stop after looking at this many files (has_more says to go on from the cursor). */
  maxScanned?: number;
}

export interface InboxPage {
  messages: StoredInboxMessage[];
  /** Cursor for the next page (oldest-first pages): pass it as `since`. null when the page is empty. */
  next_since: string | null;
  /** Cursor for the next --latest page: pass it as `before`. null unless the page is newest first and not empty. */
  next_before: string | null;
  has_more: boolean;
}

/**
 * A `since` value: a cursor (a key, messages strictly after it) or an RFC 3339 time (messages at or after it).
 * Errors: invalid_argument.
 */
export function parseSince(since: string): Result<{ key: string; isInclusive: boolean }> {
  return parseBound(since, 'since');
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
    id: idOfRecord(fileName, v),
    from: typeof v.from === 'string' ? v.from : '',
    from_hostname: typeof v.from_hostname === 'string' ? v.from_hostname : null,
    type,
    data: v.data,
    size,
    bytes: typeof v.bytes === 'number' ? v.bytes : size,
    encoding,
    received_at: typeof v.received_at === 'string' ? v.received_at : '',
    ...(typeof v.reply_to === 'string' ? { reply_to: v.reply_to } : {}),
  };
}

/** A record's id: its own field, else (the original's files) the file name without `.json`. */
function idOfRecord(fileName: string, v: Record<string, unknown>): string {
  return typeof v.id === 'string' ? v.id : fileName.replace(/\.json$/, '');
}

/** The filter fields of a record (or a head parsed from a file's prefix). */
function headOfRecord(fileName: string, v: Record<string, unknown>): MessageHead {
  return {
    id: idOfRecord(fileName, v),
    from: typeof v.from === 'string' ? v.from : '',
    from_hostname: typeof v.from_hostname === 'string' ? v.from_hostname : null,
    reply_to: typeof v.reply_to === 'string' ? v.reply_to : null,
  };
}

/** Files a filtered page looks at per call by default; the caller pages on from the cursor. */
export const INBOX_MAX_SCANNED = 20_000;

/** A stored message arrived (after its file got its name). */
export type InboxListener = (m: InboxEntryMeta) => void;

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
    const id = m.id ?? randomUUID();
    const isBinary = m.type === 'binary';
    const fixed = {
      id,
      type: m.type,
      from: m.from,
      from_hostname: m.from_hostname,
      encoding: isBinary ? ('base64' as const) : ('utf8' as const),
      bytes: m.bytes,
      size: m.bytes,
      ...(m.reply_to ? { reply_to: m.reply_to } : {}),
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
        const placed = await self.place(tmpPath, m.type, at, id);
        if (!placed.ok) {
          await abort();
          return placed;
        }
        isDone = true;
        quota.commit();
        self.onStored?.(meta);
        self.notify(meta);
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
  private place(tmpPath: string, type: InboxMessageType, at: Date, id: string): Promise<Result<void>> {
    const run = async (): Promise<Result<void>> => {
      // Never behind the previous name, even if this message's clock read came first (its fsync took longer).
      if (at.getTime() > this.lastPlacedMs) this.lastPlacedMs = at.getTime();
      this.seq = (this.seq + 1) >>> 0;
      const name = `${type.toUpperCase()}-${fileStamp(new Date(this.lastPlacedMs))}-${this.seq.toString(16).padStart(8, '0')}-${id}.json`;
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
   * One page of messages, oldest first (newest first with `isLatest`), cut to since/before and, with filters
   * (id, from, replyTo), to the messages whose head matches. A file that does not parse is renamed
   * `<name>.corrupt` (never over another file) and skipped with a warning. Errors: invalid_argument (a bound, from),
   * internal. Does I/O.
   */
  async page(opts: InboxPageOptions = {}): Promise<Result<InboxPage>> {
    const limit = opts.limit ?? Infinity;
    const maxBytes = opts.maxBytes ?? Infinity;
    const filters = compileFilters(opts);
    if (!filters.ok) return filters;
    const f = filters.value;
    const isFiltered = hasFilters(f);
    const maxScanned = isFiltered ? (opts.maxScanned ?? INBOX_MAX_SCANNED) : Infinity;
    const all = await this.names();
    if (!all.ok) return all;
    const picked = selectNames(all.value, { since: opts.since, before: opts.before, isLatest: opts.isLatest });
    if (!picked.ok) return picked;
    let names = picked.value;
    // read ID: names that carry an id are told apart without opening them.
    if (f.id !== null) names = names.filter((n) => idInName(n) === null || idInName(n) === f.id);
    const messages: StoredInboxMessage[] = [];
    let usedBytes = 0;
    let lastKey: string | null = null;
    let i = 0;
    for (; i < names.length && messages.length < limit && i < maxScanned; i++) {
      const name = names[i]!;
      const path = join(this.dir, name);
      lastKey = inboxKeyOf(name);
      if (isFiltered && !(await this.headMatches(name, f))) continue;
      let text: string;
      try {
        const st = await fsp.lstat(path); // a symlink planted in the inbox is not followed
        if (!st.isFile()) continue;
        if (messages.length > 0 && usedBytes + st.size > maxBytes) {
          lastKey = i > 0 ? inboxKeyOf(names[i - 1]!) : null;
          break;
        }
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
      if (msg === null) {
        const moved = await moveAside(path, `${path}.corrupt`);
        this.logger?.warn({ path, kept_as: moved.ok ? moved.value : null }, 'inbox: corrupt message file moved aside');
        continue;
      }
      if (isFiltered && !matchesHead(msg, f)) continue; // the whole record decides (heads are a shortcut)
      usedBytes += text.length;
      messages.push(msg);
    }
    const hasMore = i < names.length;
    const cursor = messages.length > 0 || hasMore ? lastKey : null;
    return ok({
      messages,
      next_since: opts.isLatest ? null : cursor,
      next_before: opts.isLatest ? cursor : null,
      has_more: hasMore,
    });
  }

  /** Whether a file may match `f`, from its head only (no head readable: true, the whole record decides). */
  private async headMatches(name: string, f: CompiledFilters): Promise<boolean> {
    const embedded = idInName(name);
    if (f.id !== null && embedded !== null && embedded !== f.id) return false;
    if (f.from === null && f.replyTo === null && (f.id === null || embedded !== null)) return true;
    let fh: FileHandle | undefined;
    try {
      fh = await openForScan(join(this.dir, name));
      const head = Buffer.alloc(HEAD_BYTES);
      const { bytesRead } = await fh.read(head, 0, HEAD_BYTES, 0);
      const h = headFromPrefix(head.subarray(0, bytesRead).toString('utf8'));
      return h === null ? true : matchesHead(headOfRecord(name, h), f);
    } catch {
      return true; // page() reports what it cannot read
    } finally {
      await fh?.close().catch(() => undefined);
    }
  }

  /** One message by id. Errors: not_found, internal. Does I/O. */
  async read(id: string): Promise<Result<StoredInboxMessage>> {
    const p = await this.page({ id, limit: 1, maxScanned: Infinity });
    if (!p.ok) return p;
    const m = p.value.messages[0];
    if (!m) return err('not_found', `no message ${id} in the inbox`, { hint: 'list ids with `pilotctl inbox`' });
    return ok(m);
  }

  private readonly listeners = new Set<InboxListener>();

  /** Call `fn` for every message stored from now on; returns the unsubscribe function. */
  onMessage(fn: InboxListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private notify(m: InboxEntryMeta): void {
    for (const fn of [...this.listeners]) {
      try {
        fn(m);
      } catch (e) {
        this.logger?.warn({ err: (e as Error).message }, 'inbox listener failed');
      }
    }
  }

  /**
   * The first message matching `q` (a reply: `replyTo`, optionally `from`) stored since `since` (a cursor or
   * RFC 3339 time; default: only messages from now on), waiting up to `timeoutMs`. A reply to another message
   * never ends the wait. `signal` aborts it (timeout). Errors: timeout, invalid_argument, internal. Does I/O.
   */
  async waitFor(q: InboxFilters & { since?: string }, timeoutMs: number, signal?: AbortSignal): Promise<Result<StoredInboxMessage>> {
    const filters = compileFilters(q);
    if (!filters.ok) return filters;
    const f = filters.value;
    if (q.since !== undefined) {
      const b = parseBound(q.since, 'since');
      if (!b.ok) return b;
    }
    let settle!: (r: Result<StoredInboxMessage>) => void;
    const done = new Promise<Result<StoredInboxMessage>>((resolve) => (settle = resolve));
    let isSettled = false;
    const finish = (r: Result<StoredInboxMessage>): void => {
      if (isSettled) return;
      isSettled = true;
      settle(r);
    };
    // Listen first, then look at what is stored already: a reply that lands in between is seen either way.
    const off = this.onMessage((m) => {
      if (!matchesHead({ ...m, reply_to: m.reply_to ?? null }, f)) return;
      void this.read(m.id).then((r) => {
        if (r.ok) finish(r);
      });
    });
    const timer = setTimeout(() => finish(err('timeout', `no matching message within ${timeoutMs} ms`, { hint: 'raise the wait, or check the peer: pilotctl ping <peer>' })), timeoutMs);
    const onAbort = (): void => finish(err('timeout', 'wait cancelled'));
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) onAbort();
    if (q.since !== undefined) {
      void (async () => {
        let since: string | undefined = q.since;
        for (;;) {
          const p = await this.page({ ...q, since, limit: 1 });
          if (!p.ok) return finish(p);
          if (p.value.messages[0]) return finish(ok(p.value.messages[0]));
          if (!p.value.has_more || p.value.next_since === null || isSettled) return;
          since = p.value.next_since;
        }
      })();
    }
    const r = await done;
    off();
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
    return r;
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
