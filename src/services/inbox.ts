// The inbox: one JSON file per message received on port 1001, in <home>/inbox/.
//
// The original writes {"type":"TEXT","from":…,"data":string(payload),"bytes":n,"received_at":RFC3339}
// to inbox/<TYPE>-<YYYYMMDD-HHMMSS.mmm>.json (TeoSlayer/pilotprotocol, pkg/daemon/services.go,
// saveInboxMessage). We write the contract's InboxMessage fields plus the original's `bytes`, keep the
// same file naming with a random id appended (the original overwrites two messages of the same type in
// the same millisecond), write atomically, and read the original's files too (type upper-case, no id).
// Binary payloads are base64 with "encoding":"base64" (the original's string(payload) is lossy in JSON).
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { err, ok, type Result } from '../core/result.js';
import type { Logger } from '../core/logger.js';
import type { InboxMessage, MessageType, VirtualAddrText } from '../node/api.js';
import { codeOf, ensureDir, moveAside, writeFileAtomic } from './fs-safe.js';

export type InboxMessageType = Exclude<MessageType, 'file'>;

/** What list() returns: the contract's fields, the original's `bytes`, and how `data` is encoded. */
export interface StoredInboxMessage extends InboxMessage {
  bytes: number;
  encoding: 'utf8' | 'base64';
}

export interface IncomingMessage {
  from: VirtualAddrText;
  from_hostname: string | null;
  type: InboxMessageType;
  payload: Uint8Array;
}

export interface InboxOptions {
  logger?: Logger;
  now?: () => Date;
}

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
  private readonly now: () => Date;

  constructor(
    readonly dir: string,
    opts: InboxOptions = {},
  ) {
    this.logger = opts.logger;
    this.now = opts.now ?? (() => new Date());
  }

  /** Persist one message atomically. Errors: internal (disk). Does I/O. */
  async save(m: IncomingMessage): Promise<Result<StoredInboxMessage>> {
    const made = await ensureDir(this.dir);
    if (!made.ok) return made;
    const at = this.now();
    const id = randomUUID();
    const isBinary = m.type === 'binary';
    const payload = Buffer.from(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength);
    const record: StoredInboxMessage = {
      id,
      type: m.type,
      from: m.from,
      from_hostname: m.from_hostname,
      data: isBinary ? payload.toString('base64') : payload.toString('utf8'),
      encoding: isBinary ? 'base64' : 'utf8',
      bytes: payload.length,
      size: payload.length,
      received_at: rfc3339(at),
    };
    const name = `${m.type.toUpperCase()}-${fileStamp(at)}-${id.slice(0, 8)}.json`;
    const w = await writeFileAtomic(join(this.dir, name), JSON.stringify(record));
    if (!w.ok) return w;
    return ok(record);
  }

  /**
   * All readable messages, oldest first. A file that does not parse is renamed `<name>.corrupt` (never
   * over another file) and skipped with a warning. Errors: internal. Does I/O.
   */
  async list(): Promise<Result<StoredInboxMessage[]>> {
    let names: string[];
    try {
      names = await fsp.readdir(this.dir);
    } catch (e) {
      if (codeOf(e) === 'ENOENT') return ok([]);
      return err('internal', `cannot read ${this.dir}: ${(e as Error).message}`, { cause: e });
    }
    const out: { name: string; msg: StoredInboxMessage }[] = [];
    for (const name of names) {
      if (!name.endsWith('.json') || name.startsWith('.')) continue;
      const path = join(this.dir, name);
      let text: string;
      try {
        const st = await fsp.stat(path);
        if (!st.isFile()) continue;
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
        this.logger?.warn(
          { path, kept_as: moved.ok ? moved.value : null },
          'inbox: corrupt message file moved aside',
        );
        continue;
      }
      out.push({ name, msg });
    }
    out.sort((a, b) =>
      a.msg.received_at < b.msg.received_at ? -1 : a.msg.received_at > b.msg.received_at ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
    );
    return ok(out.map((x) => x.msg));
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
