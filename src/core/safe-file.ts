// The one way this project writes a file it owns (trust, identity, config, pid file, …): a fresh temp file with a
// random name beside the target, opened O_CREAT|O_EXCL|O_NOFOLLOW (so nothing planted at a guessable name — file
// or symlink — is ever written through), fsync, then rename into place and fsync the directory. rename(2)
// replaces a symlink planted at the target itself instead of following it. Synchronous: small files, startup and
// control paths only. Does file-system I/O.
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants as fsc,
  fchmodSync,
  fsyncSync,
  linkSync,
  openSync,
  readSync,
  renameSync,
  fstatSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { open as openAsync, rename as renameAsync, unlink as unlinkAsync } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { err, ok, type Result } from './result.js';

export const PRIVATE_FILE_MODE = 0o600;
// O_NOFOLLOW is 0 where the platform lacks it (Windows); O_EXCL alone already refuses an existing symlink.
const NOFOLLOW = fsc.O_NOFOLLOW ?? 0;
const CREATE_EXCLUSIVE = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | NOFOLLOW;

export interface WriteFileSafeOptions {
  /** File mode; default 0600. Applied with fchmod too, so neither umask nor an inherited ACL changes it. */
  mode?: number;
  /** Never replace an existing `path` (hard-link instead of rename): `already_exists` when it is there. */
  noReplace?: boolean;
}

function errnoOf(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : undefined;
}

/** A temp name beside `path` nobody can guess in advance: `.<name>.tmp-<16 hex>`. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${randomBytes(8).toString('hex')}`);
}

/**
 * Atomically write `data` to `path` (see the file comment). The directory must exist. Errors: `already_exists`
 * (noReplace and `path` exists), `internal` (any I/O failure; the temp file is removed). Does file-system I/O.
 */
export function writeFileSafe(path: string, data: string | Uint8Array, opts: WriteFileSafeOptions = {}): Result<void> {
  const mode = opts.mode ?? PRIVATE_FILE_MODE;
  const tmp = tempPathFor(path);
  const failed = (cause: unknown): Result<void> => {
    tryUnlink(tmp);
    return err('internal', `cannot write ${path}: ${(cause as Error)?.message ?? String(cause)}`, {
      hint: `check free disk space and the permissions of ${dirname(path)}`,
      detail: { path, errno: errnoOf(cause) },
      cause,
    });
  };
  try {
    const fd = openSync(tmp, CREATE_EXCLUSIVE, mode);
    try {
      fchmodSync(fd, mode);
      const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch (cause) {
    return failed(cause);
  }
  try {
    if (opts.noReplace) {
      linkOrRenameNoClobber(tmp, path);
      tryUnlink(tmp);
    } else {
      renameSync(tmp, path);
    }
  } catch (cause) {
    if (errnoOf(cause) === 'EEXIST') {
      tryUnlink(tmp);
      return err('already_exists', `${path} already exists`, { hint: `remove ${path} first if it should be replaced`, detail: { path } });
    }
    return failed(cause);
  }
  fsyncDir(dirname(path));
  return ok();
}

/**
 * writeFileSafe for large files on an event loop that must keep serving (the registry snapshot, received-file
 * metadata): the same exclusive no-follow temp file, fsync, rename and directory fsync, done asynchronously.
 * `tempPath` overrides the temp name (it must be unguessable; callers whose listings skip `*.tmp` use that).
 * Errors: `internal` (the temp file is removed). Does file-system I/O.
 */
export async function writeFileSafeAsync(path: string, data: string | Uint8Array, opts: { mode?: number; tempPath?: string } = {}): Promise<Result<void>> {
  const mode = opts.mode ?? PRIVATE_FILE_MODE;
  const tmp = opts.tempPath ?? tempPathFor(path);
  try {
    const fh = await openAsync(tmp, CREATE_EXCLUSIVE, mode);
    try {
      await fh.chmod(mode);
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await renameAsync(tmp, path);
  } catch (cause) {
    await unlinkAsync(tmp).catch(() => undefined);
    return err('internal', `cannot write ${path}: ${(cause as Error)?.message ?? String(cause)}`, {
      hint: `check free disk space and the permissions of ${dirname(path)}`,
      detail: { path, errno: errnoOf(cause) },
      cause,
    });
  }
  fsyncDir(dirname(path));
  return ok();
}

// link(2) fails with EEXIST where rename(2) would overwrite. File systems without hard links fall back to
// rename: still atomic, only the no-overwrite guarantee is lost there.
function linkOrRenameNoClobber(tmp: string, path: string): void {
  try {
    linkSync(tmp, path);
  } catch (e) {
    const code = errnoOf(e);
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw e;
    renameSync(tmp, path);
  }
}

/**
 * Open `path` for appending (a log), creating it with `mode`; a symlink at `path` is refused (ELOOP) instead of
 * followed. Errors: `internal`. Returns the fd; the caller closes it. Does file-system I/O.
 */
export function openAppendNoFollow(path: string, mode = PRIVATE_FILE_MODE): Result<number> {
  try {
    return ok(openSync(path, fsc.O_WRONLY | fsc.O_APPEND | fsc.O_CREAT | NOFOLLOW, mode));
  } catch (cause) {
    return err('internal', `cannot open ${path}: ${(cause as Error).message}`, {
      hint: errnoOf(cause) === 'ELOOP' ? `${path} is a symlink: remove it` : `check the permissions of ${dirname(path)}`,
      detail: { path, errno: errnoOf(cause) },
      cause,
    });
  }
}

/**
 * Read a small regular file without following a symlink at `path`, at most `maxBytes`. null when it is missing,
 * a symlink, not a regular file or unreadable — callers treat all of these as "no such file". Does I/O.
 */
export function readSmallFileNoFollow(path: string, maxBytes = 64 * 1024): { text: string; uid: number; mode: number } | null {
  let fd: number;
  try {
    fd = openSync(path, fsc.O_RDONLY | NOFOLLOW);
  } catch {
    return null;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size > maxBytes) return null;
    const buf = Buffer.alloc(st.size);
    let n = 0;
    while (n < buf.length) {
      const r = readSync(fd, buf, n, buf.length - n, n);
      if (r === 0) break;
      n += r;
    }
    return { text: buf.subarray(0, n).toString('utf8'), uid: st.uid, mode: st.mode };
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

function tryUnlink(p: string): void {
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
