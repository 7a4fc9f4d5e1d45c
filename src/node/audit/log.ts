// The daemon's audit log (issue 15): listens to the node's event stream (src/node/events.ts), writes the
// security events as hash-chained records signed by the node key (chain.ts) to <home>/audit.log (store.ts),
// folds floods of policy denials into summaries (flood.ts), and answers `pilotctl audit` / `audit export`.
//
// Recorded: daemon.started, daemon.stopping, trust.* (requests, approvals, rejections, revocations),
// key.rotated, policy.denied (flood-limited; `policy.denied.summary` per window), and every network.* and
// policy.* kind (membership and policy changes, for the networks of issue 15). Messages, files and paths are
// not security events and stay out.
//
// Signing key: the key in force is the one the log's last key change names. A local rotation is recorded,
// signed by the old key, and the records after it by the new key (`identity()` at that moment). A daemon that
// starts with another key than the log's last one (identity replaced, or recovered) cannot sign with the old
// key: it writes `audit.key_changed` signed by the new key, which verify lists as unattested.
import type { Logger } from 'pino';
import { err, ok, type Result } from '../../core/result.js';
import { toBase64, type Identity } from '../../crypto/identity.js';
import type { NodeEvent, NodeEvents } from '../events.js';
import type { AuditEntry, AuditExport, AuditPage } from '../api.js';
import {
  encodeRecordLine,
  KIND_CREATED,
  KIND_KEY_CHANGED,
  KIND_KEY_ROTATED,
  KIND_TORN_WRITE,
  makeExportHeader,
  makeRecord,
  canonicalJson,
  type AuditRecord,
  type ExportHeader,
} from './chain.js';
import { DenialLimiter, type DenialLimiterOptions } from './flood.js';
import { AuditStore } from './store.js';

/** The log's file name in the home. */
export const AUDIT_FILE = 'audit.log';
export const KIND_DENIED_SUMMARY = 'policy.denied.summary';

/** Event kinds written to the audit log (plus every network.* and policy.* kind). */
export const AUDITED_KINDS: ReadonlySet<string> = new Set([
  'daemon.started',
  'daemon.stopping',
  'trust.request_received',
  'trust.approved',
  'trust.rejected',
  'trust.revoked',
  'key.rotated',
  'policy.denied',
]);

export function isAuditedKind(kind: string): boolean {
  return AUDITED_KINDS.has(kind) || kind.startsWith('network.') || kind.startsWith('policy.');
}

export interface AuditLogOptions {
  /** <home>/audit.log */
  path: string;
  /** The node's identity now (it changes on a local key rotation). */
  identity: () => Identity;
  nowMs: () => number;
  /** One-shot timer (the daemon's Driver.after). */
  after: (delayMs: number, fn: () => void) => { cancel(): void };
  logger: Logger;
  version: string;
  limiter?: DenialLimiterOptions;
}

export type { AuditEntry, AuditPage, AuditExport };

export class AuditLog {
  private last: AuditRecord | null;
  private signer: Identity;
  private readonly limiter: DenialLimiter;
  private summaryTimer: { cancel(): void } | null = null;
  private isClosed = false;

  private constructor(
    private readonly opts: AuditLogOptions,
    private readonly store: AuditStore,
    last: AuditRecord | null,
    signer: Identity,
  ) {
    this.last = last;
    this.signer = signer;
    this.limiter = new DenialLimiter(opts.limiter);
  }

  /**
   * Open (create) the log: writes `audit.created` into a new one, acknowledges a torn last write, and records
   * a key that is not the log's. Errors: internal (file system). Does file-system I/O.
   */
  static open(opts: AuditLogOptions): Result<AuditLog> {
    const o = AuditStore.open(opts.path);
    if (!o.ok) return o;
    const { store, last, torn, damaged, keyInForce } = o.value;
    const me = opts.identity();
    const myKey = toBase64(me.publicKey);
    const log = new AuditLog(opts, store, last, me);
    const fail = (r: Result<unknown>): Result<AuditLog> => {
      store.close();
      return r as Result<AuditLog>;
    };
    if (damaged.length > 0) opts.logger.warn({ path: opts.path, lines: damaged.slice(0, 20) }, 'the audit log holds lines that are not records (edited?): `pilotctl audit verify` shows the first');
    if (last === null) {
      const r = log.record(KIND_CREATED, { public_key: myKey, version: opts.version });
      if (!r.ok) return fail(r);
    }
    if (torn !== null) {
      opts.logger.warn({ path: opts.path, line: torn.line, bytes: torn.bytes }, 'the audit log ended with a partial record (a crash while writing): recorded as audit.torn_write');
      const r = log.record(KIND_TORN_WRITE, { line: torn.line, bytes: torn.bytes, sha256: torn.sha256 });
      if (!r.ok) return fail(r);
    }
    if (keyInForce !== null && keyInForce !== myKey) {
      opts.logger.warn({ path: opts.path, old_public_key: keyInForce, new_public_key: myKey }, 'the node key is not the one the audit log was signed with: recorded as audit.key_changed');
      const r = log.record(KIND_KEY_CHANGED, { old_public_key: keyInForce, new_public_key: myKey, reason: 'the daemon started with another key than the one the audit log was signed with' });
      if (!r.ok) return fail(r);
    }
    return ok(log);
  }

  get path(): string {
    return this.store.path;
  }

  get publicKey(): string {
    return toBase64(this.signer.publicKey);
  }

  /** Records so far. */
  get count(): number {
    return this.last === null ? 0 : this.last.seq + 1;
  }

  /** Append one record now (or at `atMs`). Errors: internal (write failed; the chain is unchanged). */
  record(kind: string, data: unknown, atMs = this.opts.nowMs()): Result<AuditRecord> {
    if (this.isClosed) return err('internal', 'the audit log is closed');
    const isSwitch = kind === KIND_KEY_CHANGED || (kind === KIND_KEY_ROTATED && typeof data === 'object' && data !== null && ['local', 'recovery'].includes(String((data as Record<string, unknown>).by)));
    const next = this.opts.identity();
    // A key change is signed by the old key when we still hold it; audit.key_changed only exists because we do not.
    const signer = kind === KIND_KEY_CHANGED ? next : this.signer;
    const r = makeRecord(this.last, kind, data, atMs, signer);
    const w = this.store.append(r);
    if (!w.ok) return w;
    this.last = r;
    if (isSwitch) {
      const nk = (r.data as Record<string, unknown>).new_public_key;
      if (nk === toBase64(next.publicKey)) this.signer = next;
      else this.opts.logger.warn({ new_public_key: nk, node_key: toBase64(next.publicKey) }, 'a key change names another key than the node holds: the audit log keeps signing with the old one');
    }
    return ok(r);
  }

  /** Record an event from the node's stream when it is a security event. Never throws. */
  handleEvent(e: NodeEvent & { at_ms: number }): void {
    if (this.isClosed || !isAuditedKind(e.type)) return;
    if (e.type === 'policy.denied') {
      this.flushSummary(e.at_ms, false);
      const d = e.data;
      const verdict = this.limiter.handle(e.at_ms, { node_id: d.node_id, port: d.port, network: d.network, rule: d.rule }, d.count);
      if (verdict === 'suppress') {
        this.armSummary();
        return;
      }
    }
    const r = this.record(e.type, e.data, e.at_ms);
    if (!r.ok) this.opts.logger.error({ kind: e.type, error: r.error.message }, 'could not write the audit log');
  }

  /** Listen to the node's events; returns the unsubscribe function. */
  attach(events: NodeEvents): () => void {
    return events.on((e) => this.handleEvent(e));
  }

  private armSummary(): void {
    if (this.summaryTimer !== null) return;
    const due = this.limiter.pollDeadlineMs();
    if (due === null) return;
    this.summaryTimer = this.opts.after(Math.max(0, due - this.opts.nowMs()), () => {
      this.summaryTimer = null;
      this.flushSummary(this.opts.nowMs(), false);
      this.armSummary();
    });
  }

  private flushSummary(nowMs: number, force: boolean): void {
    const s = this.limiter.pollSummary(nowMs, force);
    if (s === null) return;
    const r = this.record(KIND_DENIED_SUMMARY, s, nowMs);
    if (!r.ok) this.opts.logger.error({ error: r.error.message }, 'could not write the audit log');
  }

  /** Records oldest first; `sinceMs` keeps those at or after it, `limit` the newest that many. Errors: internal. */
  list(q: { sinceMs?: number; limit?: number } = {}): Result<AuditPage> {
    const all = this.store.readRecords();
    if (!all.ok) return all;
    let rs = all.value;
    if (q.sinceMs !== undefined) rs = rs.filter((r) => r.at_ms >= q.sinceMs!);
    if (q.limit !== undefined && rs.length > q.limit) rs = rs.slice(rs.length - q.limit);
    return ok({
      entries: rs.map((r) => ({ seq: r.seq, at: new Date(r.at_ms).toISOString(), at_ms: r.at_ms, kind: r.kind, data: r.data, hash: r.hash })),
      total: this.count,
      path: this.path,
      public_key: this.publicKey,
    });
  }

  /**
   * The whole log as an export: a header signed by the key in force (count + last hash, so deleting the tail
   * is detected) and the record lines. Lines that are not records are left out (a torn write is acknowledged
   * by its audit.torn_write record). Errors: internal.
   */
  exportLog(nodeId: number): Result<AuditExport> {
    this.flushSummary(this.opts.nowMs(), true);
    const all = this.store.readRecords();
    if (!all.ok) return all;
    // Only the chain up to the record we know is last (a concurrent append cannot slip in half).
    const rs = all.value.filter((r) => this.last !== null && r.seq <= this.last.seq);
    const head = this.last?.hash ?? '';
    const header: ExportHeader = makeExportHeader({ node_id: nodeId, public_key: this.publicKey, exported_at_ms: Math.trunc(this.opts.nowMs()), count: rs.length, head }, this.signer);
    const text = canonicalJson(header) + '\n' + rs.map((r) => encodeRecordLine(r) + '\n').join('');
    return ok({ text, records: rs.length, head, public_key: this.publicKey });
  }

  /** Write the pending denial summary and close the file. */
  close(): void {
    if (this.isClosed) return;
    this.summaryTimer?.cancel();
    this.summaryTimer = null;
    this.flushSummary(this.opts.nowMs(), true);
    this.isClosed = true;
    this.store.close();
  }
}
