// Persisting the node identity (synchronous file-system I/O, startup only); the key itself is src/crypto/identity.ts.
// An existing file is never replaced: a corrupt, unreadable or world-readable identity file is an error naming the
// file, because silently minting a new key would change the node's identity behind the operator's back.
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { err, ok, type Result } from '../core/index.js';
import { writeFileSafe } from '../core/safe-file.js';
import {
  ED25519_PUBLIC_KEY_BYTES,
  ED25519_SEED_BYTES,
  fromBase64,
  generateIdentity,
  identityFromSeed,
  identityToJson,
  parseIdentityJson,
  toBase64,
  type Identity,
} from '../crypto/identity.js';

export const IDENTITY_FILE_MODE = 0o600;

function errnoOf(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : undefined;
}

function corruptHint(path: string): string {
  return `fix or restore ${path} from a backup; moving it away makes the daemon create a NEW identity (new key, peers must re-trust)`;
}

/**
 * Load an existing identity file. Errors: invalid_argument (malformed, inconsistent keys, not a regular file,
 * permissions wider than 0600), not_found (no file), internal (unreadable). Does file-system I/O.
 */
export function loadIdentity(path: string): Result<Identity> {
  let mode: number;
  let isFile: boolean;
  try {
    const st = statSync(path);
    mode = st.mode;
    isFile = st.isFile();
  } catch (cause) {
    if (errnoOf(cause) === 'ENOENT') {
      return err('not_found', `identity file ${path} does not exist`, {
        hint: 'start the daemon once to create it',
        detail: { path },
      });
    }
    return err('internal', `cannot stat identity file ${path}`, {
      hint: `check the permissions of ${path} and its directory`,
      detail: { path, errno: errnoOf(cause) },
      cause,
    });
  }
  if (!isFile) {
    return err('invalid_argument', `identity file ${path} is not a regular file`, {
      hint: corruptHint(path),
      detail: { path },
    });
  }
  // The secret key must not be readable by group/others (as ssh insists for its keys). POSIX modes only.
  if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
    return err('invalid_argument', `identity file ${path} is accessible by other users (mode ${(mode & 0o777).toString(8)})`, {
      hint: `run: chmod 600 ${path}`,
      detail: { path, mode: mode & 0o777 },
    });
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    return err('internal', `cannot read identity file ${path}`, {
      hint: `check the permissions of ${path}`,
      detail: { path, errno: errnoOf(cause) },
      cause,
    });
  }
  const parsed = parseIdentityJson(text);
  if (!parsed.ok) {
    return err('invalid_argument', `identity file ${path} is corrupt: ${parsed.error.message}`, {
      hint: corruptHint(path),
      detail: { path },
      cause: parsed.error,
    });
  }
  return parsed;
}

/**
 * Load the identity at `path`, or create one on first start (mode 0600, through core/safe-file: exclusive
 * no-follow temp file, fsync, then hard-linked into place so a concurrently created file is never overwritten). Any existing file that
 * fails to load is returned as an error and left untouched. Does file-system I/O.
 */
export function loadOrCreateIdentity(path: string): Result<{ identity: Identity; created: boolean }> {
  const existing = loadIdentity(path);
  if (existing.ok) return ok({ identity: existing.value, created: false });
  if (existing.error.code !== 'not_found') return existing;

  const dir = dirname(path);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (cause) {
    return err('internal', `cannot create directory ${dir} for the identity file`, {
      hint: `check that ${dir} is writable`,
      detail: { path, errno: errnoOf(cause) },
      cause,
    });
  }

  const identity = generateIdentity();
  // noReplace: a file created concurrently by another process is never overwritten — theirs wins.
  const written = writeFileSafe(path, JSON.stringify(identityToJson(identity), null, 2), { mode: IDENTITY_FILE_MODE, noReplace: true });
  if (!written.ok) {
    if (written.error.code === 'already_exists') {
      const raced = loadIdentity(path);
      return raced.ok ? ok({ identity: raced.value, created: false }) : raced;
    }
    return err('internal', `cannot write identity file ${path}`, {
      hint: `check that ${dir} is writable and not full`,
      detail: { path, ...written.error.detail },
      cause: written.error,
    });
  }
  return ok({ identity, created: true });
}

/** Write `identity` to `path` atomically (replacing any file there). For tooling and tests; does file-system I/O. */
export function saveIdentity(path: string, identity: Identity): Result<void> {
  const dir = dirname(path);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (cause) {
    return err('internal', `cannot create directory ${dir} for the identity file`, { detail: { path, errno: errnoOf(cause) }, cause });
  }
  const written = writeFileSafe(path, JSON.stringify(identityToJson(identity), null, 2), { mode: IDENTITY_FILE_MODE });
  if (!written.ok) {
    return err('internal', `cannot write identity file ${path}`, {
      hint: `check that ${dir} is writable`,
      detail: { path, ...written.error.detail },
      cause: written.error,
    });
  }
  return ok();
}

// ---- issue 14: the recovery key ----
// A second Ed25519 key made by `pilotctl init`: its private half is printed once (and written only to
// `--recovery-file`), its public half is kept in <home>/recovery.pub and sent with every register, so the
// registry (and peers, through lookups) learn it. It can sign a rotation when the identity key is lost.

export const RECOVERY_KEY_PREFIX = 'pilot-recovery-v1:';

/** <home>/recovery.pub: {"recovery_public_key": base64}. */
export function recoveryPublicPath(home: string): string {
  return join(home, 'recovery.pub');
}

/** The printable form of a recovery key: `pilot-recovery-v1:` + base64 of its 32-byte seed. */
export function formatRecoveryKey(recovery: Identity): string {
  return RECOVERY_KEY_PREFIX + toBase64(recovery.secretKey.subarray(0, ED25519_SEED_BYTES));
}

/**
 * A recovery key from what the user kept: the printed form, or the JSON of a `--recovery-file`
 * ({"recovery_private_key": "pilot-recovery-v1:…"}). invalid_argument otherwise; never throws.
 */
export function parseRecoveryKey(text: string): Result<Identity> {
  let t = text.trim();
  if (t.startsWith('{')) {
    try {
      const doc = JSON.parse(t) as Record<string, unknown>;
      t = typeof doc.recovery_private_key === 'string' ? doc.recovery_private_key : '';
    } catch {
      t = '';
    }
  }
  if (!t.startsWith(RECOVERY_KEY_PREFIX)) {
    return err('invalid_argument', `not a recovery key (it starts with ${RECOVERY_KEY_PREFIX})`, { hint: 'pass the key `pilotctl init` printed, or the file it wrote with --recovery-file' });
  }
  const seed = fromBase64(t.slice(RECOVERY_KEY_PREFIX.length));
  if (!seed || seed.length !== ED25519_SEED_BYTES) return err('invalid_argument', 'recovery key is damaged (not base64 of 32 bytes)');
  return ok(identityFromSeed(seed));
}

/** Write the recovery private key to `path` (0600, never replacing a file). Does file-system I/O. */
export function writeRecoveryFile(path: string, recovery: Identity): Result<void> {
  const doc = { recovery_private_key: formatRecoveryKey(recovery), recovery_public_key: toBase64(recovery.publicKey) };
  const w = writeFileSafe(path, JSON.stringify(doc, null, 2) + '\n', { mode: IDENTITY_FILE_MODE, noReplace: true });
  if (!w.ok && w.error.code === 'already_exists') return err('already_exists', `${path} exists; the recovery key is never written over a file`, { hint: 'pass another --recovery-file path' });
  return w.ok ? ok() : err('internal', `cannot write recovery file ${path}`, { detail: { path, ...w.error.detail }, cause: w.error });
}

/** Publish the recovery public key in the home (read by the daemon at start). Does file-system I/O. */
export function writeRecoveryPublic(home: string, recoveryPublicKey: Uint8Array): Result<void> {
  const path = recoveryPublicPath(home);
  const w = writeFileSafe(path, JSON.stringify({ recovery_public_key: toBase64(recoveryPublicKey) }) + '\n', { mode: IDENTITY_FILE_MODE });
  return w.ok ? ok() : err('internal', `cannot write ${path}`, { detail: { path, ...w.error.detail }, cause: w.error });
}

/** The home's recovery public key (base64), or null when there is none or the file is unusable. Does file-system I/O. */
export function readRecoveryPublic(home: string): string | null {
  try {
    const doc = JSON.parse(readFileSync(recoveryPublicPath(home), 'utf8')) as Record<string, unknown>;
    const k = typeof doc.recovery_public_key === 'string' ? fromBase64(doc.recovery_public_key) : null;
    return k && k.length === ED25519_PUBLIC_KEY_BYTES ? toBase64(k) : null;
  } catch {
    return null;
  }
}

/**
 * `init`'s recovery key: a fresh key pair, its public half published in the home, its private half written to
 * `recoveryFile` when given. Returns the printable private key (shown once) and the public key. Does file-system I/O.
 */
export function createRecoveryKey(home: string, recoveryFile: string | null): Result<{ recoveryKey: string; recoveryPublicKey: string }> {
  const recovery = generateIdentity();
  const pub = writeRecoveryPublic(home, recovery.publicKey);
  if (!pub.ok) return pub;
  if (recoveryFile !== null) {
    const w = writeRecoveryFile(recoveryFile, recovery);
    if (!w.ok) return w;
  }
  return ok({ recoveryKey: formatRecoveryKey(recovery), recoveryPublicKey: toBase64(recovery.publicKey) });
}

/** Create a new identity file at `path`; already_exists when one is there (never replaced). Does file-system I/O. */
export function createIdentityFile(path: string): Result<Identity & { publicKeyB64: string }> {
  const existing = loadIdentity(path);
  if (existing.ok) return err('already_exists', `identity ${path} exists already`, { hint: 'this home is initialised; `pilotctl info` shows it (remove the file only to make a NEW node)', detail: { path } });
  if (existing.error.code !== 'not_found') return existing;
  const r = loadOrCreateIdentity(path);
  if (!r.ok) return r;
  if (!r.value.created) return err('already_exists', `identity ${path} was created concurrently`, { detail: { path } });
  return ok({ ...r.value.identity, publicKeyB64: toBase64(r.value.identity.publicKey) });
}
