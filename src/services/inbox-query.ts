// Inbox queries without I/O: which file names a page looks at, in which order, and whether a message's head
// (id, sender, reply_to — the fields stored before `data`, see inbox.ts) matches the filters. The Inbox reads
// the files; everything that decides is here, so it is unit-tested on plain values (test/unit/services/inbox-query).
//
// Listing keys are file names without `TYPE-` and `.json`: `<stamp>-<seq>[-<id>]`, growing in the order messages
// were stored. A bound is a cursor (a key from a previous page: strictly after it for `since`, strictly before it
// for `before`) or an RFC 3339 time (`since`: received at or after it; `before`: received before it).
import { err, ok, type Result } from '../core/result.js';
import { formatAddr, parseAddr } from '../wire/address.js';

export interface InboxFilters {
  /** Only this message (its id). */
  id?: string;
  /** Only messages from this peer: a virtual address, a node id, or a hostname. */
  from?: string;
  /** Only replies to this message id. */
  replyTo?: string;
}

export interface InboxWindow {
  since?: string;
  before?: string;
  /** Newest first (default: oldest first). */
  isLatest?: boolean;
}

/** A bound on listing keys. */
export interface KeyBound {
  key: string;
  isInclusive: boolean;
}

/** The original's "20060102-150405.000" stamp in UTC: the first part of every listing key. */
export function fileStamp(d: Date): string {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return (
    `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}-` +
    `${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}.${p(d.getUTCMilliseconds(), 3)}`
  );
}

/** Listing order key of a file name: the name without `TYPE-` and `.json` (= the stamp, the sequence, the id). */
export function inboxKeyOf(fileName: string): string {
  return fileName.replace(/\.json$/, '').replace(/^[A-Z]+-/, '');
}

const ID_IN_NAME_RE = /-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.json$/;

/** The message id a file name carries (names since issue 14 end in `-<id>.json`); null for older names. */
export function idInName(fileName: string): string | null {
  const m = ID_IN_NAME_RE.exec(fileName);
  return m ? m[1]! : null;
}

/**
 * A `since`/`before` value: a cursor or an RFC 3339 time. Errors: invalid_argument (`flag` names the option in
 * the message).
 */
export function parseBound(text: string, flag: 'since' | 'before'): Result<KeyBound> {
  if (/^\d{4}-\d{2}-\d{2}T/.test(text)) {
    const t = Date.parse(text);
    if (Number.isNaN(t)) return err('invalid_argument', `invalid --${flag} time '${text}'`, { hint: `an RFC 3339 time like 2026-01-02T03:04:05Z, or a next_${flag} value` });
    // since: at or after the time; before: strictly before it (keys of that millisecond sort after the bare stamp).
    return ok({ key: fileStamp(new Date(t)), isInclusive: flag === 'since' });
  }
  if (text.length > 256 || !/^[\x21-\x7e]*$/.test(text)) {
    return err('invalid_argument', `invalid --${flag} cursor`, { hint: `pass the next_${flag} value of the previous page, or an RFC 3339 time` });
  }
  return ok({ key: text, isInclusive: false });
}

/** Whether `key` is inside the window's bounds. */
function isWithin(key: string, since: KeyBound | null, before: KeyBound | null): boolean {
  if (since && (since.isInclusive ? key < since.key : key <= since.key)) return false;
  if (before && key >= before.key) return false;
  return true;
}

/**
 * The names a page considers, in the order it takes them: `names` sorted oldest first (as Inbox lists them),
 * cut to the window, reversed for `isLatest`. Errors: invalid_argument (a bound).
 */
export function selectNames(names: readonly string[], w: InboxWindow): Result<string[]> {
  let since: KeyBound | null = null;
  let before: KeyBound | null = null;
  if (w.since !== undefined && w.since !== '') {
    const s = parseBound(w.since, 'since');
    if (!s.ok) return s;
    since = s.value;
  }
  if (w.before !== undefined && w.before !== '') {
    const b = parseBound(w.before, 'before');
    if (!b.ok) return b;
    before = b.value;
  }
  const picked = since === null && before === null ? [...names] : names.filter((n) => isWithin(inboxKeyOf(n), since, before));
  if (w.isLatest) picked.reverse();
  return ok(picked);
}

/** How `from` is compared: by address (an address or node id was given) or by hostname. */
export type FromMatcher = { address: string } | { hostname: string };

/** Errors: invalid_argument (neither an address, a node id nor a hostname-like word). */
export function parseFrom(text: string): Result<FromMatcher> {
  if (/^\d+:/.test(text)) {
    const a = parseAddr(text);
    if (!a.ok) return err('invalid_argument', a.error.message, { hint: 'a virtual address (0:0000.0000.0001), a node id (12) or a hostname' });
    return ok({ address: formatAddr(a.value) });
  }
  if (/^\d{1,10}$/.test(text) && Number(text) <= 0xffffffff) return ok({ address: formatAddr({ network: 0, node: Number(text) }) });
  if (/^[a-z0-9][a-z0-9-]{0,62}$/i.test(text)) return ok({ hostname: text.toLowerCase() });
  return err('invalid_argument', `invalid --from '${text}'`, { hint: 'a virtual address (0:0000.0000.0001), a node id (12) or a hostname' });
}

/** The fields of a stored message a filter looks at (all stored before `data`). */
export interface MessageHead {
  id: string;
  from: string;
  from_hostname: string | null;
  reply_to?: string | null;
}

export interface CompiledFilters {
  id: string | null;
  from: FromMatcher | null;
  replyTo: string | null;
}

/** Errors: invalid_argument (from). */
export function compileFilters(f: InboxFilters): Result<CompiledFilters> {
  let from: FromMatcher | null = null;
  if (f.from !== undefined && f.from !== '') {
    const p = parseFrom(f.from);
    if (!p.ok) return p;
    from = p.value;
  }
  return ok({ id: f.id ?? null, from, replyTo: f.replyTo ?? null });
}

export function hasFilters(f: CompiledFilters): boolean {
  return f.id !== null || f.from !== null || f.replyTo !== null;
}

export function matchesHead(h: MessageHead, f: CompiledFilters): boolean {
  if (f.id !== null && h.id !== f.id) return false;
  if (f.replyTo !== null && h.reply_to !== f.replyTo) return false;
  if (f.from !== null) {
    if ('address' in f.from ? h.from !== f.from.address : (h.from_hostname ?? '').toLowerCase() !== f.from.hostname) return false;
  }
  return true;
}

/**
 * The head of a message file from its first bytes, without parsing `data`: our files store every field but
 * `received_at` before `"data":"`, so the text up to there, closed with `}`, is a JSON object. null when the
 * prefix does not have that shape (the original's files put `data` earlier: the caller reads the whole file).
 */
export function headFromPrefix(prefix: string): Record<string, unknown> | null {
  const at = prefix.indexOf(',"data":"');
  if (at < 0) return null;
  try {
    const v: unknown = JSON.parse(prefix.slice(0, at) + '}');
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
