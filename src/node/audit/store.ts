// The audit log's file: <home>/audit.log, one canonical record per line (chain.ts), opened for append only
// (O_APPEND, 0600) and fsync'ed after every record — security events are rare, and flood-limited (flood.ts),
// so a sync write per record costs nothing that matters and a record acknowledged is on disk.
//
// Crash safety: a crash in the middle of a write leaves a partial last line. open() finds it: a partial line
// that still parses as the next record only lacked its newline (kept); anything else is ended with a newline
// and acknowledged by an `audit.torn_write` record carrying its length and SHA-256, so the loss is recorded,
// signed and shown by `audit verify` — never silently dropped. Does file-system I/O (synchronous).
import { closeSync, fstatSync, fsyncSync, openSync, readFileSync, writeSync, constants as fsc } from 'node:fs';
import { createHash } from 'node:crypto';
import { err, ok, type Result } from '../../core/result.js';
import { encodeRecordLine, isRecordSignedBy, parseRecordLine, recordHash, type AuditRecord } from './chain.js';
import { fromBase64 } from '../../crypto/identity.js';

export const AUDIT_FILE_MODE = 0o600;

export interface TornLine {
  /** 1-based line number. */
  line: number;
  bytes: number;
  sha256: string;
}

export interface OpenedStore {
  store: AuditStore;
  /** The last record that links (null: the file is new or empty). */
  last: AuditRecord | null;
  /** A partial last line found at open (it has been ended with a newline; the caller acknowledges it). */
  torn: TornLine | null;
  /** Lines that are not records and were not acknowledged (tampering, or an old crash): logged by the caller. */
  damaged: number[];
  /** Key changes in the file, in order (for the key in force): new_public_key of each key switch record. */
  keyInForce: string | null;
}

export class AuditStore {
  private constructor(
    readonly path: string,
    private fd: number | null,
  ) {}

  /** Open (create) the log for appending and read what it holds. Errors: internal (cannot open/read/write). */
  static open(path: string): Result<OpenedStore> {
    let fd: number;
    try {
      fd = openSync(path, fsc.O_WRONLY | fsc.O_APPEND | fsc.O_CREAT | (fsc.O_NOFOLLOW ?? 0), AUDIT_FILE_MODE);
    } catch (e) {
      return err('internal', `cannot open the audit log ${path}: ${(e as Error).message}`, { hint: `check the permissions of ${path}`, cause: e });
    }
    let bytes: Buffer;
    try {
      if (!fstatSync(fd).isFile()) throw new Error('not a regular file');
      bytes = readFileSync(path);
    } catch (e) {
      closeSync(fd);
      return err('internal', `cannot read the audit log ${path}: ${(e as Error).message}`, { cause: e });
    }
    const store = new AuditStore(path, fd);
    const scan = scanLog(bytes);
    if (scan.tornText !== null) {
      // End the partial line so the next record starts on its own line.
      const w = store.writeRaw('\n');
      if (!w.ok) {
        store.close();
        return w;
      }
    }
    return ok({ store, last: scan.last, torn: scan.torn, damaged: scan.damaged, keyInForce: scan.keyInForce });
  }

  /** Append one record line and fsync. Errors: internal. */
  append(r: AuditRecord): Result<void> {
    return this.writeRaw(encodeRecordLine(r) + '\n');
  }

  private writeRaw(text: string): Result<void> {
    if (this.fd === null) return err('internal', 'the audit log is closed');
    const buf = Buffer.from(text, 'utf8');
    try {
      let off = 0;
      while (off < buf.length) off += writeSync(this.fd, buf, off, buf.length - off);
      fsyncSync(this.fd);
      return ok();
    } catch (e) {
      return err('internal', `cannot write the audit log ${this.path}: ${(e as Error).message}`, { hint: 'check free disk space and the permissions of the home', cause: e });
    }
  }

  /** Every well-formed record in file order (damaged lines skipped). Errors: internal. */
  readRecords(): Result<AuditRecord[]> {
    let bytes: Buffer;
    try {
      bytes = readFileSync(this.path);
    } catch (e) {
      return err('internal', `cannot read the audit log ${this.path}: ${(e as Error).message}`, { cause: e });
    }
    const out: AuditRecord[] = [];
    for (const line of bytes.toString('utf8').split('\n')) {
      if (line === '') continue;
      const r = parseRecordLine(line);
      if (r.ok) out.push(r.value);
    }
    return ok(out);
  }

  close(): void {
    if (this.fd === null) return;
    try {
      closeSync(this.fd);
    } catch {
      /* already gone */
    }
    this.fd = null;
  }
}

interface Scan {
  last: AuditRecord | null;
  torn: TornLine | null;
  tornText: string | null;
  damaged: number[];
  keyInForce: string | null;
}

/** Walk the file: the last record that links, a partial last line, damaged lines, the key in force. Pure. */
export function scanLog(bytes: Uint8Array): Scan {
  const s: Scan = { last: null, torn: null, tornText: null, damaged: [], keyInForce: null };
  if (bytes.length === 0) return s;
  const endsWithNewline = bytes[bytes.length - 1] === 0x0a;
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  const lines = text.split('\n');
  if (endsWithNewline) lines.pop();
  lines.forEach((line, i) => {
    const isPartial = i === lines.length - 1 && !endsWithNewline;
    const r = parseRecordLine(line);
    const links = r.ok && recordHash(r.value) === r.value.hash && (s.last === null ? r.value.seq === 0 : r.value.seq === s.last.seq + 1 && r.value.prev === s.last.hash);
    if (r.ok && links) {
      s.last = r.value;
      if (r.value.kind === 'audit.created' && typeof r.value.data.public_key === 'string') s.keyInForce = r.value.data.public_key;
      const nk = r.value.data.new_public_key;
      const isSwitch = (r.value.kind === 'key.rotated' && (r.value.data.by === 'local' || r.value.data.by === 'recovery')) || r.value.kind === 'audit.key_changed';
      if (isSwitch && typeof nk === 'string' && fromBase64(nk) !== null) s.keyInForce = nk;
      // An acknowledged torn write: the line before is accounted for.
      if (r.value.kind === 'audit.torn_write' && s.damaged[s.damaged.length - 1] === i) s.damaged.pop();
      if (isPartial) s.tornText = ''; // a whole record without its newline: only the newline is missing
      return;
    }
    if (isPartial) {
      // From the bytes, not the decoded text: a write torn inside a UTF-8 sequence must hash as on disk.
      const lineBytes = bytes.subarray(bytes.lastIndexOf(0x0a) + 1);
      s.torn = { line: i + 1, bytes: lineBytes.length, sha256: createHash('sha256').update(lineBytes).digest('hex') };
      s.tornText = line;
      return;
    }
    s.damaged.push(i + 1);
  });
  return s;
}

/** Is `r` signed by the base64 key `publicKey`? (For the log's own sanity checks.) */
export function isSignedByB64(r: AuditRecord, publicKey: string): boolean {
  const k = fromBase64(publicKey);
  return k !== null && isRecordSignedBy(r, k);
}
