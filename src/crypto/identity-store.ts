// Persisting the node identity: the one place under src/crypto that does file-system I/O (synchronous, startup only).
// An existing file is never replaced: a corrupt, unreadable or world-readable identity file is an error naming the
// file, because silently minting a new key would change the node's identity behind the operator's back.
import {
  closeSync,
  fchmodSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import sodium from 'sodium-native';
import { err, ok, type Result } from '../core/index.js';
import { generateIdentity, identityToJson, parseIdentityJson, type Identity } from './identity.js';

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
 * Load the identity at `path`, or create one on first start (mode 0600, atomic: temp file in the same directory,
 * fsync, then hard-link into place so a concurrently created file is never overwritten). Any existing file that
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
  const text = JSON.stringify(identityToJson(identity), null, 2);
  const suffix = new Uint8Array(6);
  sodium.randombytes_buf(suffix);
  const tmp = join(dir, `.${basename(path)}.tmp-${process.pid}-${Buffer.from(suffix).toString('hex')}`);

  try {
    const fd = openSync(tmp, 'wx', IDENTITY_FILE_MODE);
    try {
      fchmodSync(fd, IDENTITY_FILE_MODE); // the umask cannot widen 0600, but an inherited ACL default could
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch (cause) {
    safeUnlink(tmp);
    return err('internal', `cannot write identity file ${path}`, {
      hint: `check that ${dir} is writable and not full`,
      detail: { path, errno: errnoOf(cause) },
      cause,
    });
  }

  try {
    linkSync(tmp, path);
    safeUnlink(tmp);
  } catch (cause) {
    const code = errnoOf(cause);
    if (code === 'EEXIST') {
      // Another process created it between our check and now: theirs wins.
      safeUnlink(tmp);
      const raced = loadIdentity(path);
      return raced.ok ? ok({ identity: raced.value, created: false }) : raced;
    }
    if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'ENOSYS') {
      // File systems without hard links: rename is still atomic, only the no-overwrite guarantee is lost.
      try {
        renameSync(tmp, path);
      } catch (cause2) {
        safeUnlink(tmp);
        return err('internal', `cannot move the new identity into ${path}`, {
          detail: { path, errno: errnoOf(cause2) },
          cause: cause2,
        });
      }
    } else {
      safeUnlink(tmp);
      return err('internal', `cannot move the new identity into ${path}`, {
        detail: { path, errno: code },
        cause,
      });
    }
  }
  fsyncDir(dir);
  return ok({ identity, created: true });
}

/** Write `identity` to `path` atomically (replacing any file there). For tooling and tests; does file-system I/O. */
export function saveIdentity(path: string, identity: Identity): Result<void> {
  const dir = dirname(path);
  const suffix = new Uint8Array(6);
  sodium.randombytes_buf(suffix);
  const tmp = join(dir, `.${basename(path)}.tmp-${process.pid}-${Buffer.from(suffix).toString('hex')}`);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const fd = openSync(tmp, 'wx', IDENTITY_FILE_MODE);
    try {
      fchmodSync(fd, IDENTITY_FILE_MODE);
      writeSync(fd, JSON.stringify(identityToJson(identity), null, 2));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (cause) {
    safeUnlink(tmp);
    return err('internal', `cannot write identity file ${path}`, {
      hint: `check that ${dir} is writable`,
      detail: { path, errno: errnoOf(cause) },
      cause,
    });
  }
  fsyncDir(dir);
  return ok();
}

function safeUnlink(p: string): void {
  try {
    unlinkSync(p);
  } catch {
    /* already gone */
  }
}

// Makes the new directory entry durable; some platforms cannot open or fsync directories, which is harmless.
function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    /* best effort */
  }
}
