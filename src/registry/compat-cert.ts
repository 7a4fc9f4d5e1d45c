// The rendezvous's TLS certificate for the compat port (issue 13): the operator's (--tls-cert/--tls-key), or a
// self-signed one (RSA 2048, CN "pilot-rendezvous", 10 years, via `selfsigned`) made at first start and kept in
// one PEM file (key + certificate, 0600) — beside the store, or in $HOME/.pilot-rendezvous/ without one — so the
// fingerprint the nodes pinned or trusted on first use survives restarts. One file written with no-replace:
// two processes starting at once both end with the winner's certificate. Does file-system I/O.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import selfsigned from 'selfsigned';
import { err, ok, type Result } from '../core/result.js';
import { readSmallFileNoFollow, writeFileSafe } from '../core/safe-file.js';
import type { Fingerprint } from '../wire/compat-frames.js';

/** The self-signed key + certificate file's name inside the certificate directory. */
export const SELF_SIGNED_FILE = 'compat-tls.pem';
const SELF_SIGNED_CN = 'pilot-rendezvous';
const SELF_SIGNED_DAYS = 3650;
const MAX_PEM_BYTES = 256 * 1024;

export interface CompatCert {
  /** PEM certificate chain and PEM private key, as node:tls takes them. */
  cert: string;
  key: string;
  /** SHA-256 of the leaf certificate's DER, `AB:CD:…` (X509Certificate.fingerprint256). */
  fingerprint: Fingerprint;
  /** Where it came from: the operator's files, a self-signed file found, or one made now. */
  origin: 'files' | 'self-signed' | 'self-signed-new';
  /** The file(s) it was read from / written to. */
  path: string;
}

/** Where the self-signed certificate lives: beside the store, else `$HOME/.pilot-rendezvous/`. */
export function compatCertDir(storePath: string | undefined, home = homedir()): string {
  return storePath ? dirname(storePath) : join(home, '.pilot-rendezvous');
}

/**
 * The operator's certificate when `certPath`/`keyPath` are given (both or neither: invalid_argument), else the
 * self-signed one in `dir` (created when absent). invalid_argument for unreadable/unparseable PEM or a key that
 * does not match the certificate; internal when the self-signed file cannot be written. Does file-system I/O.
 */
export function loadCompatCert(opts: { certPath?: string; keyPath?: string; dir: string }): Result<CompatCert> {
  if ((opts.certPath === undefined) !== (opts.keyPath === undefined)) {
    return err('invalid_argument', '--tls-cert and --tls-key go together', { hint: 'pass both, or neither for a self-signed certificate' });
  }
  if (opts.certPath !== undefined && opts.keyPath !== undefined) {
    const cert = readPem(opts.certPath);
    if (!cert.ok) return cert;
    const key = readPem(opts.keyPath);
    if (!key.ok) return key;
    return checked(cert.value, key.value, 'files', `${opts.certPath} + ${opts.keyPath}`);
  }
  const path = join(opts.dir, SELF_SIGNED_FILE);
  const existing = readSmallFileNoFollow(path, MAX_PEM_BYTES);
  if (existing) return fromCombined(existing.text, 'self-signed', path);
  try {
    mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    return err('internal', `cannot create ${opts.dir}: ${(e as Error).message}`, { hint: 'pass --store in a writable directory, or --tls-cert/--tls-key', cause: e });
  }
  const made = selfsigned.generate([{ name: 'commonName', value: SELF_SIGNED_CN }], {
    days: SELF_SIGNED_DAYS,
    keySize: 2048,
    algorithm: 'sha256',
  });
  const written = writeFileSafe(path, `${made.private.trim()}\n${made.cert.trim()}\n`, { noReplace: true });
  if (!written.ok) {
    if (written.error.code !== 'already_exists') return written;
    // Another process made it first: use theirs, so both serve the same fingerprint.
    const theirs = readSmallFileNoFollow(path, MAX_PEM_BYTES);
    if (!theirs) return err('internal', `${path} appeared but cannot be read`);
    return fromCombined(theirs.text, 'self-signed', path);
  }
  return checked(made.cert, made.private, 'self-signed-new', path);
}

function readPem(path: string): Result<string> {
  const f = readSmallFileNoFollow(path, MAX_PEM_BYTES);
  if (!f) return err('invalid_argument', `cannot read ${path} (missing, a symlink, or over ${MAX_PEM_BYTES} bytes)`, { hint: 'check --tls-cert / --tls-key' });
  return ok(f.text);
}

function fromCombined(text: string, origin: CompatCert['origin'], path: string): Result<CompatCert> {
  const key = pemBlocks(text, /PRIVATE KEY/);
  const cert = pemBlocks(text, /^CERTIFICATE$/);
  if (!key || !cert) {
    return err('invalid_argument', `${path} does not hold a PEM private key and certificate`, { hint: `remove ${path} to have a new self-signed certificate made (nodes that trusted the old one will refuse the new one until told)` });
  }
  return checked(cert, key, origin, path);
}

/** The PEM blocks whose label matches, joined; null when none. */
function pemBlocks(text: string, label: RegExp): string | null {
  const blocks = [...text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g)].filter((m) => label.test(m[1]!));
  return blocks.length ? blocks.map((m) => m[0]).join('\n') + '\n' : null;
}

function checked(cert: string, key: string, origin: CompatCert['origin'], path: string): Result<CompatCert> {
  try {
    const x = new X509Certificate(cert);
    if (!x.checkPrivateKey(createPrivateKey(key))) {
      return err('invalid_argument', `the private key does not belong to the certificate (${path})`, { hint: 'check --tls-cert / --tls-key' });
    }
    return ok({ cert, key, fingerprint: x.fingerprint256, origin, path });
  } catch (e) {
    return err('invalid_argument', `not a usable PEM certificate/key (${path}): ${(e as Error).message}`, { hint: 'check --tls-cert / --tls-key', cause: e });
  }
}
