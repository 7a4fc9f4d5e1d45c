// The audit log's records and their chain (issue 15), sans-IO: canonical encoding, SHA-256 hash chain, one
// Ed25519 signature per record by the node key, the signed export header, and the verifier that names the
// first bad record and why. No file system, no clock: the store (store.ts) and the log (log.ts) do the I/O,
// `pilotctl audit verify` runs verifyAuditBytes offline on an export.
//
// One record is one line of canonical JSON (keys sorted, no spaces, no undefined):
//   {"at_ms":…,"data":{…},"hash":"<sha256 hex>","kind":"trust.approved","prev":"<hash of the record before>","seq":N,"sig":"<b64>","v":1}
// hash = SHA-256("pilot-audit/1\n" ‖ canonical({v, seq, at_ms, kind, data, prev})); sig = Ed25519 over
// "pilot-audit-record/1:" ‖ hash (hex text). Record 0 is `audit.created` with the signing key in its data, and
// links to 64 zeros. Every line must be byte-identical to the canonical encoding of what it parses to, so no
// byte of a line can change without changing its content (and so its hash): there is no "harmless" edit.
//
// An export is one header line, then the records:
//   {"count":N,"exported_at_ms":…,"format":"pilot-audit-export/1","head":"<hash of the last record>","node_id":…,"public_key":"<b64>","sig":"<b64>"}
// The header is signed by the key in force at the end of the chain, and pins the record count and the last
// hash: deleting the last records (which leaves a perfectly linked shorter chain) is caught by the count.
//
// Key changes: a record `key.rotated` with by local|recovery, or `audit.key_changed` (written when the daemon
// starts with another key than the log's last one), moves signing from data.old_public_key to
// data.new_public_key. It is signed by the old key (attested) or, when the old key is gone, by the new one
// (listed as unattested: only the final key vouches for it, through the header).
//
// Torn writes: a crash in the middle of an append leaves a partial last line. The store, when it next opens
// the log, ends that line and appends `audit.torn_write` {bytes, sha256} of the partial line, so the loss is
// recorded and signed; the verifier checks a raw log's partial line against it and lists it in torn_writes.
// An unacknowledged partial last line fails verification (reason `torn`).
import { createHash } from 'node:crypto';
import { err, ok, type Result } from '../../core/result.js';
import { fromBase64, sign, toBase64, verify, type Identity } from '../../crypto/identity.js';

/** Strict base64 (for callers above node/, which do not import crypto/). */
export { fromBase64 };

export const AUDIT_RECORD_VERSION = 1;
export const AUDIT_EXPORT_FORMAT = 'pilot-audit-export/1';
export const GENESIS_PREV = '0'.repeat(64);
export const KIND_CREATED = 'audit.created';
export const KIND_TORN_WRITE = 'audit.torn_write';
export const KIND_KEY_CHANGED = 'audit.key_changed';
export const KIND_KEY_ROTATED = 'key.rotated';
/** A record line longer than this is refused when written and reported as edited when read. */
export const MAX_RECORD_LINE_BYTES = 64 * 1024;
/** verifyAuditBytes refuses larger inputs (invalid_argument) instead of reading them into memory. */
export const MAX_AUDIT_FILE_BYTES = 512 * 1024 * 1024;

const HASH_DOMAIN = 'pilot-audit/1\n';
const RECORD_SIG_DOMAIN = 'pilot-audit-record/1:';
const HEAD_SIG_DOMAIN = 'pilot-audit-head/1:';
const HEX64_RE = /^[0-9a-f]{64}$/;

export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };
export type JsonObject = { [k: string]: JsonValue };

export interface AuditRecord {
  v: 1;
  seq: number;
  at_ms: number;
  kind: string;
  data: JsonObject;
  prev: string;
  hash: string;
  sig: string;
}

export interface ExportHeader {
  format: typeof AUDIT_EXPORT_FORMAT;
  node_id: number;
  public_key: string;
  exported_at_ms: number;
  count: number;
  head: string;
  sig: string;
}

/**
 * Deterministic JSON: object keys sorted (UTF-16 order), no whitespace, undefined members dropped, values
 * JSON cannot hold (undefined in arrays, functions, NaN, ±Infinity) as null, bigint as a decimal string. Pure.
 */
export function canonicalJson(v: unknown): string {
  if (v === null || v === undefined || typeof v === 'function' || typeof v === 'symbol') return 'null';
  if (typeof v === 'bigint') return JSON.stringify(v.toString());
  if (typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return '[' + v.map((x) => canonicalJson(x)).join(',') + ']';
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o)
    .filter((k) => o[k] !== undefined && typeof o[k] !== 'function' && typeof o[k] !== 'symbol')
    .sort();
  return '{' + keys.map((k) => JSON.stringify(k) + ':' + canonicalJson(o[k])).join(',') + '}';
}

/** `data` as the record will hold it: JSON values only (what a re-parse of the line gives back). */
export function normalizeData(data: unknown): JsonObject {
  const v = JSON.parse(canonicalJson(data)) as unknown;
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as JsonObject) : { value: v as JsonValue };
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** The hash a record must carry (hex). Pure. */
export function recordHash(r: Pick<AuditRecord, 'v' | 'seq' | 'at_ms' | 'kind' | 'data' | 'prev'>): string {
  return sha256Hex(HASH_DOMAIN + canonicalJson({ v: r.v, seq: r.seq, at_ms: r.at_ms, kind: r.kind, data: r.data, prev: r.prev }));
}

function recordSigMessage(hash: string): Uint8Array {
  return Buffer.from(RECORD_SIG_DOMAIN + hash, 'utf8');
}

/** The record after `prev` (null: the first record), signed by `signer`. Pure but for the signature. */
export function makeRecord(prev: { seq: number; hash: string } | null, kind: string, data: unknown, atMs: number, signer: Identity): AuditRecord {
  const body = { v: AUDIT_RECORD_VERSION as 1, seq: prev === null ? 0 : prev.seq + 1, at_ms: Math.trunc(atMs), kind, data: normalizeData(data), prev: prev === null ? GENESIS_PREV : prev.hash };
  const hash = recordHash(body);
  return { ...body, hash, sig: toBase64(sign(signer, recordSigMessage(hash))) };
}

/** One line (without the newline). */
export function encodeRecordLine(r: AuditRecord): string {
  return canonicalJson(r);
}

export function isRecordSignedBy(r: AuditRecord, publicKey: Uint8Array): boolean {
  const sig = fromBase64(r.sig);
  return sig !== null && verify(publicKey, recordSigMessage(r.hash), sig);
}

function isCanonicalB64(s: unknown, bytes: number): s is string {
  if (typeof s !== 'string') return false;
  const b = fromBase64(s);
  // Base64's last character carries unused bits: without the round trip, two texts would decode to one signature.
  return b !== null && b.length === bytes && toBase64(b) === s;
}

const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Parse one line as a record: well-formed, canonical, typed. The error message says what is wrong. Pure, total. */
export function parseRecordLine(line: string): Result<AuditRecord> {
  if (Buffer.byteLength(line, 'utf8') > MAX_RECORD_LINE_BYTES) return err('invalid_argument', `longer than ${MAX_RECORD_LINE_BYTES} bytes`);
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return err('invalid_argument', 'not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return err('invalid_argument', 'not a JSON object');
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o).sort().join(',');
  if (keys !== 'at_ms,data,hash,kind,prev,seq,sig,v') return err('invalid_argument', `fields are not those of a record (${keys})`);
  if (o.v !== AUDIT_RECORD_VERSION) return err('invalid_argument', `unknown record version ${JSON.stringify(o.v)}`);
  if (!isUint(o.seq) || !isUint(o.at_ms)) return err('invalid_argument', 'seq and at_ms must be whole numbers');
  if (typeof o.kind !== 'string' || o.kind.length === 0 || o.kind.length > 64) return err('invalid_argument', 'kind must be a short string');
  if (typeof o.data !== 'object' || o.data === null || Array.isArray(o.data)) return err('invalid_argument', 'data must be an object');
  if (typeof o.prev !== 'string' || !HEX64_RE.test(o.prev) || typeof o.hash !== 'string' || !HEX64_RE.test(o.hash)) {
    return err('invalid_argument', 'prev and hash must be 64 lowercase hex digits');
  }
  if (!isCanonicalB64(o.sig, 64)) return err('invalid_argument', 'sig must be base64 of 64 bytes');
  if (canonicalJson(o) !== line) return err('invalid_argument', 'not in canonical form (reformatted, or a byte changed)');
  return ok(o as unknown as AuditRecord);
}

function headerSigMessage(h: Omit<ExportHeader, 'sig'>): Uint8Array {
  return Buffer.from(HEAD_SIG_DOMAIN + canonicalJson(h), 'utf8');
}

/** The signed first line of an export. */
export function makeExportHeader(h: Omit<ExportHeader, 'sig' | 'format'>, signer: Identity): ExportHeader {
  const body = { format: AUDIT_EXPORT_FORMAT, ...h } as Omit<ExportHeader, 'sig'>;
  return { ...body, sig: toBase64(sign(signer, headerSigMessage(body))) };
}

function parseHeaderLine(line: string): Result<ExportHeader> {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return err('invalid_argument', 'not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return err('invalid_argument', 'not a JSON object');
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o).sort().join(',');
  if (keys !== 'count,exported_at_ms,format,head,node_id,public_key,sig') return err('invalid_argument', `fields are not those of an export header (${keys})`);
  if (o.format !== AUDIT_EXPORT_FORMAT) return err('invalid_argument', `unknown format ${JSON.stringify(o.format)}`);
  if (!isUint(o.count) || !isUint(o.exported_at_ms) || !isUint(o.node_id)) return err('invalid_argument', 'count, exported_at_ms and node_id must be whole numbers');
  if (typeof o.head !== 'string' || !HEX64_RE.test(o.head)) return err('invalid_argument', 'head must be 64 lowercase hex digits');
  if (!isCanonicalB64(o.public_key, 32)) return err('invalid_argument', 'public_key must be base64 of 32 bytes');
  if (!isCanonicalB64(o.sig, 64)) return err('invalid_argument', 'sig must be base64 of 64 bytes');
  if (canonicalJson(o) !== line) return err('invalid_argument', 'not in canonical form (reformatted, or a byte changed)');
  return ok(o as unknown as ExportHeader);
}

function looksLikeHeader(line: string): boolean {
  return line.startsWith('{') && line.includes(`"format":"${AUDIT_EXPORT_FORMAT}"`);
}

/** Why verification stopped. */
export type AuditFailureReason = 'edited' | 'missing' | 'reordered' | 'bad_signature' | 'torn' | 'truncated' | 'header' | 'wrong_key' | 'empty';

export interface AuditFailure {
  reason: AuditFailureReason;
  /** 1-based line of the file (0: the file as a whole). */
  line: number;
  /** The record's seq when the line is a record (or the seq that is missing), else null. */
  seq: number | null;
  message: string;
}

export interface AuditVerifyReport {
  ok: boolean;
  failure: AuditFailure | null;
  /** Records that verified (before the failure, if any). */
  records: number;
  /** 'export' (header + records) or 'log' (a raw <home>/audit.log). */
  source: 'export' | 'log';
  /** The key the chain ends with (base64), and where the expected key came from. */
  public_key: string | null;
  public_key_source: 'flag' | 'header' | 'log';
  node_id: number | null;
  exported_at_ms: number | null;
  /** Last record's hash. */
  head: string | null;
  first_at_ms: number | null;
  last_at_ms: number | null;
  torn_writes: { seq: number; bytes: number; sha256: string }[];
  unattested_key_changes: { seq: number; new_public_key: string }[];
  /** Per-kind record counts. */
  kinds: Record<string, number>;
}

interface Line {
  /** 1-based line number. */
  n: number;
  text: string | null; // null: not valid UTF-8
  bytes: Uint8Array;
  hasNewline: boolean;
}

function splitLines(bytes: Uint8Array): Line[] {
  const out: Line[] = [];
  const dec = new TextDecoder('utf-8', { fatal: true });
  let start = 0;
  let n = 1;
  while (start < bytes.length) {
    let end = bytes.indexOf(0x0a, start);
    const hasNewline = end >= 0;
    if (!hasNewline) end = bytes.length;
    const b = bytes.subarray(start, end);
    let text: string | null;
    try {
      text = dec.decode(b);
    } catch {
      text = null;
    }
    out.push({ n, text, bytes: b, hasNewline });
    start = end + 1;
    n++;
  }
  return out;
}

const isKeySwitch = (r: AuditRecord): boolean =>
  (r.kind === KIND_KEY_ROTATED && (r.data.by === 'local' || r.data.by === 'recovery')) || r.kind === KIND_KEY_CHANGED;

/**
 * Verify an export (or a raw audit.log) from its bytes. `publicKey` (the node's key as the verifier knows it,
 * e.g. from the registry) must be the key the chain starts or ends with; without it the export's header key
 * (or, for a raw log, the key record 0 names) is used and `public_key_source` says so. Pure, total: any input
 * gives a report, never a throw.
 */
export function verifyAuditBytes(bytes: Uint8Array, opts: { publicKey?: Uint8Array } = {}): AuditVerifyReport {
  const report: AuditVerifyReport = {
    ok: false,
    failure: null,
    records: 0,
    source: 'log',
    public_key: null,
    public_key_source: opts.publicKey ? 'flag' : 'log',
    node_id: null,
    exported_at_ms: null,
    head: null,
    first_at_ms: null,
    last_at_ms: null,
    torn_writes: [],
    unattested_key_changes: [],
    kinds: {},
  };
  const fail = (reason: AuditFailureReason, line: number, seq: number | null, message: string): AuditVerifyReport => {
    report.failure = { reason, line, seq, message };
    return report;
  };
  const lines = splitLines(bytes);
  if (lines.length === 0) return fail('empty', 0, null, 'the file is empty');

  let header: ExportHeader | null = null;
  let body = lines;
  const first = lines[0]!;
  if (first.text !== null && looksLikeHeader(first.text)) {
    const h = parseHeaderLine(first.text);
    if (!h.ok) return fail('header', 1, null, `the export header is damaged: ${h.error.message}`);
    header = h.value;
    report.source = 'export';
    report.node_id = header.node_id;
    report.exported_at_ms = header.exported_at_ms;
    if (!opts.publicKey) report.public_key_source = 'header';
    if (!first.hasNewline) return fail('truncated', 1, null, 'the export holds a header and no records');
    body = lines.slice(1);
  }
  if (body.length === 0) return fail('empty', lines.length, null, 'no records');

  // Parse every line first: a seq that shows up later tells "reordered" from "missing".
  const parsed = body.map((l) => (l.text === null ? null : parseRecordLine(l.text)));
  const seqLine = new Map<number, number>();
  parsed.forEach((p, i) => {
    if (p?.ok && !seqLine.has(p.value.seq)) seqLine.set(p.value.seq, body[i]!.n);
  });

  let expectedSeq = 0;
  let prevHash = GENESIS_PREV;
  let keyInForce: Uint8Array | null = null;
  let initialKey: Uint8Array | null = null;
  let pendingTorn: { line: Line } | null = null;
  const seenHashes = new Map<string, number>();
  for (let i = 0; i < body.length; i++) {
    const line = body[i]!;
    const p = parsed[i]!;
    const isLast = i === body.length - 1;
    if (p === null || !p.ok) {
      const why = p === null ? 'not valid UTF-8' : p.error.message;
      if (isLast && !line.hasNewline) {
        return fail('torn', line.n, expectedSeq, `line ${line.n} is a partial record (${line.bytes.length} bytes, no newline: a crash while writing?) — ${why}; the daemon acknowledges it on its next start`);
      }
      if (pendingTorn !== null) return fail('edited', pendingTorn.line.n, expectedSeq, `line ${pendingTorn.line.n} is not a record`);
      if (report.source === 'log' && !isLast) {
        pendingTorn = { line }; // must be acknowledged by the next record
        continue;
      }
      return fail('edited', line.n, expectedSeq, `line ${line.n} is not a well-formed record: ${why}`);
    }
    const r = p.value;
    if (line.bytes.length > MAX_RECORD_LINE_BYTES) return fail('edited', line.n, r.seq, `line ${line.n} is too long`);
    if (recordHash(r) !== r.hash) return fail('edited', line.n, r.seq, `record seq ${r.seq} (line ${line.n}) was edited: its content does not match its hash`);
    if (r.seq !== expectedSeq || r.prev !== prevHash) {
      if (r.seq > expectedSeq) {
        const later = seqLine.get(expectedSeq);
        if (later !== undefined && later > line.n) return fail('reordered', line.n, r.seq, `record seq ${r.seq} (line ${line.n}) comes before seq ${expectedSeq} (line ${later}): records were reordered`);
        const gap = r.seq - expectedSeq;
        return fail('missing', line.n, expectedSeq, `${gap === 1 ? `record seq ${expectedSeq} is` : `records seq ${expectedSeq}..${r.seq - 1} are`} missing before line ${line.n} (seq ${r.seq})`);
      }
      if (r.seq < expectedSeq) {
        const dup = seenHashes.get(r.hash);
        if (dup !== undefined) return fail('reordered', line.n, r.seq, `record seq ${r.seq} (line ${line.n}) repeats line ${dup}: records were duplicated or reordered`);
        return fail('reordered', line.n, r.seq, `record seq ${r.seq} (line ${line.n}) comes after seq ${expectedSeq - 1}: records were reordered or replaced`);
      }
      return fail('edited', line.n, r.seq, `record seq ${r.seq} (line ${line.n}) does not link to the record before it: it was replaced`);
    }
    if (r.seq === 0) {
      const k = typeof r.data.public_key === 'string' ? fromBase64(r.data.public_key) : null;
      if (r.kind !== KIND_CREATED || k === null || k.length !== 32) return fail('edited', line.n, 0, `record 0 (line ${line.n}) is not an ${KIND_CREATED} record naming the log's key`);
      keyInForce = initialKey = k;
    }
    const key = keyInForce!;
    let signedBy: 'old' | 'new' | null = isRecordSignedBy(r, key) ? 'old' : null;
    let newKey: Uint8Array | null = null;
    if (isKeySwitch(r)) {
      const oldK = typeof r.data.old_public_key === 'string' ? fromBase64(r.data.old_public_key) : null;
      newKey = typeof r.data.new_public_key === 'string' ? fromBase64(r.data.new_public_key) : null;
      if (oldK === null || newKey === null || newKey.length !== 32 || toBase64(oldK) !== toBase64(key)) {
        return fail('edited', line.n, r.seq, `record seq ${r.seq} (line ${line.n}) changes keys from one that is not the key in force`);
      }
      if (signedBy === null && isRecordSignedBy(r, newKey)) signedBy = 'new';
    }
    if (signedBy === null) return fail('bad_signature', line.n, r.seq, `record seq ${r.seq} (line ${line.n}) is not signed by the node key ${toBase64(key)}`);
    if (pendingTorn !== null) {
      const t = pendingTorn.line;
      const sha = createHash('sha256').update(t.bytes).digest('hex');
      if (r.kind !== KIND_TORN_WRITE || r.data.bytes !== t.bytes.length || r.data.sha256 !== sha) {
        return fail('edited', t.n, r.seq, `line ${t.n} is not a well-formed record, and record seq ${r.seq} does not acknowledge it as a torn write`);
      }
      pendingTorn = null;
    }
    if (r.kind === KIND_TORN_WRITE && typeof r.data.bytes === 'number' && typeof r.data.sha256 === 'string') {
      report.torn_writes.push({ seq: r.seq, bytes: r.data.bytes, sha256: r.data.sha256 });
    }
    if (newKey !== null) {
      if (signedBy === 'new') report.unattested_key_changes.push({ seq: r.seq, new_public_key: toBase64(newKey) });
      keyInForce = newKey;
    }
    seenHashes.set(r.hash, line.n);
    report.kinds[r.kind] = (report.kinds[r.kind] ?? 0) + 1;
    report.first_at_ms ??= r.at_ms;
    report.last_at_ms = r.at_ms;
    report.records++;
    report.head = r.hash;
    expectedSeq = r.seq + 1;
    prevHash = r.hash;
    if (isLast && !line.hasNewline && report.source === 'export') return fail('edited', line.n, r.seq, `the export's last line has no newline`);
  }
  if (pendingTorn !== null) return fail('edited', pendingTorn.line.n, expectedSeq, `line ${pendingTorn.line.n} is not a record`);

  const finalKey = keyInForce!;
  report.public_key = toBase64(finalKey);
  if (header !== null) {
    const hk = fromBase64(header.public_key)!;
    const { sig, ...unsigned } = header;
    if (!verify(hk, headerSigMessage(unsigned), fromBase64(sig)!)) return fail('header', 1, null, 'the export header is not signed by the key it names');
    if (header.public_key !== report.public_key) return fail('header', 1, null, `the export header is signed by ${header.public_key}, but the chain ends with key ${report.public_key}`);
    if (header.count > report.records) {
      const k = header.count - report.records;
      return fail('truncated', lines.length, report.records, `the signed head counts ${header.count} records but the file holds ${report.records}: the last ${k === 1 ? 'record (seq ' + report.records + ') was' : `${k} records (seq ${report.records}..${header.count - 1}) were`} deleted`);
    }
    if (header.count < report.records) return fail('edited', body[header.count]!.n, header.count, `records after seq ${header.count - 1} were added after the export was signed`);
    if (header.head !== report.head) return fail('edited', body[body.length - 1]!.n, report.records - 1, `the last record is not the one the signed head names`);
  }
  if (opts.publicKey) {
    const want = toBase64(opts.publicKey);
    if (want !== report.public_key && want !== toBase64(initialKey!)) {
      return fail('wrong_key', 0, null, `the log is signed by ${toBase64(initialKey!)}${report.public_key !== toBase64(initialKey!) ? ` then ${report.public_key}` : ''}, not by the expected key ${want}`);
    }
  }
  report.ok = true;
  return report;
}
