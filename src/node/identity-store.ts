// Persisting the node identity (synchronous file-system I/O, startup only); the key itself is src/crypto/identity.ts.
// An existing file is never replaced: a corrupt, unreadable or world-readable identity file is an error naming the
// file, because silently minting a new key would change the node's identity behind the operator's back.
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { err, ok, type Result } from '../core/index.js';
import { writeFileSafe } from '../core/safe-file.js';
import { generateIdentity, identityToJson, parseIdentityJson, type Identity } from '../crypto/identity.js';

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
