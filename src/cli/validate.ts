// Argument checks done before the daemon is contacted: a bad argument is a usage error (exit 2) with a hint.
import { err, ok, type Result } from '../core/result.js';
import { formatAddr, parseAddr } from '../wire/address.js';
import { isHostname, parseHostname, type Hostname } from '../wire/hostname.js';
import { parseDurationMs } from './args.js';

const PEER_HINT = 'a peer is a virtual address (0:0000.0000.0001), a node id (12) or a hostname (agent-alpha)';

export function checkHostname(s: string): Result<Hostname> {
  return parseHostname(s);
}

/** Address text, decimal node id or hostname; returned as typed (the daemon resolves it). */
export function checkPeer(s: string): Result<string> {
  if (/^\d+:/.test(s)) {
    const a = parseAddr(s);
    if (!a.ok) return err('invalid_argument', a.error.message, { hint: a.error.hint ?? PEER_HINT });
    return ok(s);
  }
  if (/^\d+$/.test(s)) {
    if (Number(s) > 0xffffffff) return err('invalid_argument', `node id ${s} is out of range (0..4294967295)`, { hint: PEER_HINT });
    return ok(s);
  }
  if (isHostname(s)) return ok(s);
  return err('invalid_argument', `invalid peer '${s}'`, { hint: PEER_HINT });
}

/** Best-effort address text for output fields named `target`: addresses and node ids need no daemon. */
export function literalAddress(peer: string): string | null {
  const a = parseAddr(peer);
  if (a.ok) return formatAddr(a.value);
  if (/^\d+$/.test(peer)) return formatAddr({ network: 0, node: Number(peer) });
  return null;
}

export function checkPort(s: string, name = 'port'): Result<number> {
  if (!/^\d{1,5}$/.test(s) || Number(s) < 1 || Number(s) > 65535) {
    return err('invalid_argument', `invalid ${name} '${s}'`, { hint: 'ports are integers 1..65535' });
  }
  return ok(Number(s));
}

export function checkNodeId(s: string): Result<number> {
  if (!/^\d{1,10}$/.test(s) || Number(s) > 0xffffffff) {
    return err('invalid_argument', `invalid node_id '${s}'`, { hint: 'node ids are decimal integers, see `pilotctl pending` or `pilotctl trust`' });
  }
  return ok(Number(s));
}

export function checkCount(s: string | true | undefined, dflt: number, name = 'count', min = 1): Result<number> {
  if (s === undefined) return ok(dflt);
  if (s === true || !/^\d{1,9}$/.test(s) || Number(s) < min) {
    return err('invalid_argument', `invalid --${name} '${String(s)}'`, { hint: `--${name} takes an integer ≥ ${min}` });
  }
  return ok(Number(s));
}

/** An optional count flag (e.g. --limit): undefined when absent, else as checkCount. */
export function checkOptionalCount(s: string | true | undefined, name: string, min = 1): Result<number | undefined> {
  return s === undefined ? ok(undefined) : checkCount(s, 0, name, min);
}

export function checkDuration(s: string | true | undefined, dfltMs: number, name = 'timeout'): Result<number> {
  if (s === undefined) return ok(dfltMs);
  const ms = s === true ? NaN : parseDurationMs(s);
  if (!Number.isFinite(ms) || ms < 0) {
    return err('invalid_argument', `invalid --${name} '${String(s)}'`, { hint: 'durations look like 500ms, 10s, 2m or a number of seconds' });
  }
  return ok(ms);
}

/** Sizes in MB as the original's bench (fractions allowed). */
export function checkSizeMb(s: string, maxMb: number): Result<number> {
  const n = /^\d+(\.\d+)?$/.test(s) ? Number(s) : NaN;
  if (!Number.isFinite(n) || n <= 0 || n > maxMb) {
    return err('invalid_argument', `invalid size '${s}'`, { hint: `size is in MB, greater than 0 and at most ${maxMb}` });
  }
  return ok(n);
}

export function checkTag(s: string): Result<string> {
  if (!/^[a-z0-9][a-z0-9-]{0,31}$/.test(s)) {
    return err('invalid_argument', `invalid tag '${s}'`, { hint: 'tags are lowercase letters, digits and hyphens, at most 32 characters' });
  }
  return ok(s);
}

export function checkTopic(s: string): Result<string> {
  if (s.length === 0 || s.length > 128 || /[\s\n]/.test(s)) {
    return err('invalid_argument', `invalid topic '${s}'`, { hint: 'topics are 1..128 characters without spaces; * subscribes to all' });
  }
  return ok(s);
}
