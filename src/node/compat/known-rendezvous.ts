// Trust on first use for the rendezvous's TLS certificate, as ssh's known_hosts: `<home>/known_rendezvous.json`
// maps `host:port` of a compat port to the SHA-256 fingerprint first seen there (`{"host:port":"AB:CD:…"}`, 0600,
// written atomically through src/node/json-file.ts → src/core/safe-file.ts). A pinned fingerprint
// (--registry-fingerprint) wins over the file and is never written to it. Does file-system I/O.
import { err, ok, type Result } from '../../core/result.js';
import { parseFingerprint, type Fingerprint } from '../../wire/compat-frames.js';
import { readJsonFile, writeJsonFile } from '../json-file.js';

export const KNOWN_RENDEZVOUS_FILE = 'known_rendezvous.json';

export type FingerprintVerdict =
  /** Matches the pin or the stored fingerprint. */
  | { kind: 'known' }
  /** First sight: stored now (trust on first use). */
  | { kind: 'stored' };

function isRecord(v: unknown): v is Record<string, string> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string');
}

/**
 * Check `seen` (the certificate's fingerprint256) for `target` (`host:port`): against `pinned` when given, else
 * against `file`, storing it there when the target is new. Errors: fingerprint_mismatch (the message names both
 * fingerprints), internal (the file cannot be read or written).
 */
export function checkFingerprint(opts: { target: string; seen: Fingerprint; pinned: Fingerprint | null; file: string; nowMs: number }): Result<FingerprintVerdict> {
  const seen = parseFingerprint(opts.seen);
  if (!seen.ok) return err('fingerprint_mismatch', `the rendezvous at ${opts.target} presented an unreadable certificate fingerprint`);
  if (opts.pinned !== null) {
    if (seen.value === opts.pinned) return ok({ kind: 'known' });
    return err('fingerprint_mismatch', `the rendezvous at ${opts.target} presented certificate ${seen.value}, but --registry-fingerprint pins ${opts.pinned}`, {
      detail: { target: opts.target, seen: seen.value, expected: opts.pinned, source: 'pinned' },
    });
  }
  const known = readJsonFile<Record<string, string>>(opts.file, {}, isRecord, opts.nowMs);
  if (!known.ok) return known;
  const stored = known.value[opts.target];
  if (stored !== undefined) {
    const s = parseFingerprint(stored);
    if (s.ok && s.value === seen.value) return ok({ kind: 'known' });
    return err('fingerprint_mismatch', `the rendezvous at ${opts.target} presented certificate ${seen.value}, but ${opts.file} recorded ${stored} for it`, {
      detail: { target: opts.target, seen: seen.value, expected: stored, source: opts.file },
    });
  }
  const w = writeJsonFile(opts.file, { ...known.value, [opts.target]: seen.value });
  if (!w.ok) return w;
  return ok({ kind: 'stored' });
}
