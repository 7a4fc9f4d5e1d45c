// `pilotctl audit` (issue 15): the daemon's hash-chained, node-signed log of security events.
//   audit [--since 1h|RFC3339] [--limit N]   what the daemon recorded (through the daemon)
//   audit export FILE                         the whole log with a signed head, as JSON lines
//   audit verify FILE [--public-key KEY]      offline (no daemon): names the first bad record and why
// The record format, the chain and the verifier are src/node/audit/chain.ts; docs/audit.md has examples.
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { err, ok, type Result } from '../core/result.js';
import { fromBase64, MAX_AUDIT_FILE_BYTES, verifyAuditBytes, type AuditVerifyReport } from '../node/audit/chain.js';
import type { AuditEntry } from '../node/api.js';
import { parseDurationMs, usageErr } from './args.js';
import { defineCommand, type Command } from './command.js';
import { escapeText, fields } from './output.js';

/** `--since`: a duration back from now (90s, 1h, 2h30m) or an RFC 3339 / ISO time. NaN when neither. */
export function parseSinceMs(text: string, nowMs: number): number {
  const d = parseDurationMs(text);
  if (Number.isFinite(d)) return nowMs - d;
  if (!/^\d{4}-\d{2}-\d{2}/.test(text)) return NaN;
  const t = Date.parse(text);
  return Number.isFinite(t) ? t : NaN;
}

function entryLine(e: AuditEntry): string {
  const data = Object.entries(e.data)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${e.at}  #${e.seq}  ${e.kind}${data ? '  ' + escapeText(data) : ''}\n`;
}

const audit = defineCommand<{ sinceMs?: number; limit?: number }>({
  name: 'audit',
  group: 'Audit and policy',
  summary: "Show this node's audit log: trust changes, key rotations, policy denials, daemon start/stop (hash-chained, signed by the node key)",
  args: [],
  flags: [
    { name: 'since', kind: 'string', value: '<dur|time>', description: 'only records at or after: a duration back from now (1h, 30m) or an RFC 3339 time' },
    { name: 'limit', kind: 'int', value: '<n>', description: 'only the newest n records' },
  ],
  returns: 'entries [{seq, at, at_ms, kind, data, hash}], total, path, public_key',
  errors: ['not_running', 'not_found', 'internal'],
  parse(a) {
    const out: { sinceMs?: number; limit?: number } = {};
    const s = a.flags.get('since');
    if (typeof s === 'string') {
      const t = parseSinceMs(s, Date.now());
      if (!Number.isFinite(t)) return usageErr(`invalid --since '${s}': a duration (1h, 30m, 90s) or an RFC 3339 time (2026-12-02T06:00:00Z)`, 'audit');
      out.sinceMs = Math.max(0, Math.trunc(t));
    }
    const l = a.flags.get('limit');
    if (l !== undefined) {
      if (typeof l !== 'string' || !/^\d{1,7}$/.test(l) || Number(l) < 1) return usageErr(`invalid --limit '${String(l)}': a whole number, at least 1`, 'audit');
      out.limit = Number(l);
    }
    return ok(out);
  },
  async run(ctx, q) {
    const c = await ctx.client();
    if (!c.ok) return c;
    const r = await c.value.audit(q);
    if (!r.ok) return r;
    const p = r.value;
    const text = p.entries.length === 0 ? `no audit records${q.sinceMs !== undefined ? ' in that time' : ''} (${p.total} in ${p.path})\n` : p.entries.map(entryLine).join('') + `(${p.entries.length} of ${p.total} records, ${p.path})\n`;
    return ok({ data: p, text });
  },
});

const auditExport = defineCommand<string>({
  name: 'audit export',
  group: 'Audit and policy',
  summary: 'Write the whole audit log to FILE as JSON lines with a signed head (count + last hash), for `audit verify` anywhere',
  args: [{ name: 'file', required: true, description: 'where to write the export (overwritten)' }],
  flags: [],
  returns: 'path, records, head, public_key, bytes',
  errors: ['not_running', 'not_found', 'internal'],
  parse(a, ctx) {
    return ok(resolve(ctx.io.cwd, a.positional[0]!));
  },
  async run(ctx, path) {
    const c = await ctx.client();
    if (!c.ok) return c;
    const r = await c.value.auditExport();
    if (!r.ok) return r;
    try {
      writeFileSync(path, r.value.text, { mode: 0o600 });
    } catch (e) {
      return err('internal', `cannot write ${path}: ${(e as Error).message}`, { hint: 'choose a path you can write', cause: e });
    }
    const data = { path, records: r.value.records, head: r.value.head, public_key: r.value.public_key, bytes: Buffer.byteLength(r.value.text) };
    return ok({ data, text: `exported ${data.records} records to ${path}\n` + fields([['head', data.head], ['public key', data.public_key]]) });
  },
});

/** --public-key: base64 of 32 bytes, or a file holding it (identity.pub's {"public_key": …} or the bare text). */
function readPublicKey(text: string, cwd: string, home: string | undefined): Result<Uint8Array> {
  const direct = fromBase64(text.trim());
  if (direct !== null && direct.length === 32) return ok(direct);
  const path = resolve(cwd, home && text.startsWith('~/') ? home + text.slice(1) : text);
  if (existsSync(path)) {
    let body: string;
    try {
      body = readFileSync(path, 'utf8').trim();
    } catch (e) {
      return err('invalid_argument', `cannot read --public-key file ${path}: ${(e as Error).message}`);
    }
    let k: string = body;
    try {
      const j = JSON.parse(body) as unknown;
      if (typeof j === 'object' && j !== null && typeof (j as Record<string, unknown>).public_key === 'string') k = (j as Record<string, string>).public_key;
    } catch {
      /* bare base64 */
    }
    const b = fromBase64(k);
    if (b !== null && b.length === 32) return ok(b);
    return err('invalid_argument', `--public-key file ${path} holds no Ed25519 public key`, { hint: 'give the key as base64 (pilotctl find <node> shows public_key) or the node\'s identity.pub' });
  }
  return err('invalid_argument', `--public-key '${text}' is neither base64 of an Ed25519 public key nor a file`, { hint: "the node's public_key from `pilotctl find <node>` or `pilotctl info`, or its identity.pub" });
}

function reportData(path: string, r: AuditVerifyReport): Record<string, unknown> {
  return {
    path,
    valid: r.ok,
    records: r.records,
    source: r.source,
    public_key: r.public_key,
    public_key_source: r.public_key_source,
    node_id: r.node_id,
    exported_at: r.exported_at_ms === null ? null : new Date(r.exported_at_ms).toISOString(),
    first_at: r.first_at_ms === null ? null : new Date(r.first_at_ms).toISOString(),
    last_at: r.last_at_ms === null ? null : new Date(r.last_at_ms).toISOString(),
    head: r.head,
    kinds: r.kinds,
    torn_writes: r.torn_writes,
    unattested_key_changes: r.unattested_key_changes,
    ...(r.failure ? { failure: r.failure } : {}),
  };
}

const auditVerify = defineCommand<{ path: string; publicKey?: string }>({
  name: 'audit verify',
  group: 'Audit and policy',
  summary: 'Check an audit export offline (no daemon): every hash, link and signature, and the signed head; names the first bad record and why',
  args: [{ name: 'file', required: true, description: 'an `audit export` file (or a raw <home>/audit.log)' }],
  flags: [{ name: 'public-key', kind: 'string', value: '<b64|file>', description: "the node's key (base64, or its identity.pub); default: the key the export's header names" }],
  returns: 'path, valid, records, source (export|log), public_key, public_key_source (flag|header|log), node_id, exported_at, first_at, last_at, head, kinds, torn_writes, unattested_key_changes; failure: verify_failed with detail {failure: {reason, line, seq, message}}',
  errors: ['verify_failed', 'not_found', 'internal'],
  parse(a, ctx) {
    const out: { path: string; publicKey?: string } = { path: resolve(ctx.io.cwd, a.positional[0]!) };
    const k = a.flags.get('public-key');
    if (k !== undefined) {
      if (typeof k !== 'string' || k.trim() === '') return usageErr('--public-key needs a value', 'audit verify');
      out.publicKey = k;
    }
    return ok(out);
  },
  async run(ctx, p) {
    let publicKey: Uint8Array | undefined;
    if (p.publicKey !== undefined) {
      const k = readPublicKey(p.publicKey, ctx.io.cwd, ctx.io.env.HOME);
      if (!k.ok) return k;
      publicKey = k.value;
    }
    let bytes: Buffer;
    try {
      const st = statSync(p.path);
      if (!st.isFile()) return err('invalid_argument', `${p.path} is not a file`);
      if (st.size > MAX_AUDIT_FILE_BYTES) return err('invalid_argument', `${p.path} is larger than ${MAX_AUDIT_FILE_BYTES} bytes`);
      bytes = readFileSync(p.path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return err('not_found', `no such file: ${p.path}`, { hint: 'make one with: pilotctl audit export FILE' });
      return err('internal', `cannot read ${p.path}: ${(e as Error).message}`, { cause: e });
    }
    const r = verifyAuditBytes(bytes, publicKey ? { publicKey } : {});
    const data = reportData(p.path, r);
    if (!r.ok) {
      const f = r.failure!;
      return err('verify_failed', `${p.path}: ${f.reason}: ${f.message}`, { detail: data });
    }
    const keyNote = r.public_key_source === 'flag' ? 'the given key' : r.public_key_source === 'header' ? "the key its header names (pass --public-key to check it is the node's)" : 'the key its first record names (pass --public-key to check it is the node\'s)';
    let text = `valid: ${r.records} records, signed by ${keyNote}\n` + fields([
      ['public key', r.public_key],
      ['node id', r.node_id],
      ['exported at', data.exported_at as string | null],
      ['first', data.first_at as string | null],
      ['last', data.last_at as string | null],
      ['head', r.head],
    ]);
    for (const t of r.torn_writes) text += `note: record #${t.seq} acknowledges a torn write of ${t.bytes} bytes (the daemon crashed while writing)\n`;
    for (const k of r.unattested_key_changes) text += `note: record #${k.seq} changes the key to ${k.new_public_key} without the old key's signature\n`;
    return ok({ data, text });
  },
});

export const AUDIT_COMMANDS: Command[] = [audit, auditExport, auditVerify];
