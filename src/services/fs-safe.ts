// File-system moves that never replace an existing file: link(2) fails with EEXIST instead of
// overwriting, which rename(2) would do silently.
import { writeFileSafeAsync } from '../core/safe-file.js';
import { constants as fsc, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { err, ok, type Result } from '../core/result.js';

function codeOf(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code;
}

/**
 * Move `src` to `dst` only if `dst` does not exist. ok(false) when it exists. Uses link+unlink; on file
 * systems without hard links it reserves `dst` with an exclusive create and renames over that reservation.
 */
export async function moveNoClobber(src: string, dst: string): Promise<Result<boolean>> {
  try {
    await fsp.link(src, dst);
    await fsp.unlink(src).catch(() => undefined);
    return ok(true);
  } catch (e) {
    const code = codeOf(e);
    if (code === 'EEXIST') return ok(false);
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EXDEV' && code !== 'ENOSYS') {
      return err('internal', `cannot move ${src} to ${dst}: ${(e as Error).message}`, { cause: e });
    }
  }
  try {
    const fh = await fsp.open(dst, 'wx', 0o600);
    await fh.close();
  } catch (e) {
    if (codeOf(e) === 'EEXIST') return ok(false);
    return err('internal', `cannot create ${dst}: ${(e as Error).message}`, { cause: e });
  }
  try {
    await fsp.rename(src, dst);
    return ok(true);
  } catch (e) {
    await fsp.unlink(dst).catch(() => undefined);
    return err('internal', `cannot move ${src} to ${dst}: ${(e as Error).message}`, { cause: e });
  }
}

/** Move `src` to `base`, or `base-1`, `base-2`, … — the first name that is free. Returns the name used. */
export async function moveAside(src: string, base: string, maxTries = 1000): Promise<Result<string>> {
  for (let i = 0; i < maxTries; i++) {
    const dst = i === 0 ? base : `${base}-${i}`;
    const r = await moveNoClobber(src, dst);
    if (!r.ok) return r;
    if (r.value) return ok(dst);
  }
  return err('internal', `no free name for ${base} after ${maxTries} tries`);
}

/** O_CREAT|O_EXCL|O_NOFOLLOW: never opens something planted at the path (file, symlink or FIFO). */
const CREATE_EXCLUSIVE = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW;

/** Create a new file (0600) for writing; fails with EEXIST if anything is already at `path`. Throws like fsp.open. */
export function createExclusive(path: string): Promise<FileHandle> {
  return fsp.open(path, CREATE_EXCLUSIVE, 0o600);
}

/** A temp file name beside `path`, unpredictable, ending in .tmp (listings and clear skip those). */
export function tempNameFor(path: string): string {
  return `${path}.${randomBytes(8).toString('hex')}.tmp`;
}

/** Atomically create or replace `path` with `data`: src/core/safe-file.ts's writer, with a `*.tmp` temp name. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<Result<void>> {
  return writeFileSafeAsync(path, data, { tempPath: tempNameFor(path) });
}

/** O_RDONLY|O_NONBLOCK|O_NOFOLLOW: a planted FIFO cannot block the reader, a symlink is not followed. */
export function openForScan(path: string): Promise<FileHandle> {
  return fsp.open(path, fsc.O_RDONLY | fsc.O_NONBLOCK | fsc.O_NOFOLLOW);
}

/** Temp files left by a crash are not counted by any quota: remove those in `dir` untouched for `olderThanMs`. */
export async function sweepStaleTemps(dir: string, isTemp: (name: string) => boolean, olderThanMs: number, nowMs: number): Promise<number> {
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const n of names) {
    if (!isTemp(n)) continue;
    try {
      const st = await fsp.lstat(`${dir}/${n}`);
      if (st.isFile() && nowMs - st.mtimeMs > olderThanMs) {
        await fsp.unlink(`${dir}/${n}`);
        removed++;
      }
    } catch {
      /* gone meanwhile */
    }
  }
  return removed;
}

export async function ensureDir(dir: string): Promise<Result<void>> {
  try {
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    return ok();
  } catch (e) {
    return err('internal', `cannot create ${dir}: ${(e as Error).message}`, { cause: e });
  }
}

export { codeOf };

/**
 * Open a file to send it (send-file, both protocols): the handle, its size and mtime. not_found when it is missing,
 * internal when it cannot be read, invalid_argument when it is not a regular file (the handle is closed then).
 * The caller closes the handle.
 */
export async function openFileToSend(path: string): Promise<Result<{ fh: FileHandle; size: number; mtimeMs: number }>> {
  let fh: FileHandle;
  try {
    fh = await fsp.open(path, 'r');
  } catch (e) {
    const code = codeOf(e);
    if (code === 'ENOENT') return err('not_found', `file not found: ${path}`, { hint: 'check the path' });
    if (code === 'EACCES' || code === 'EPERM') return err('internal', `permission denied: ${path}`, { hint: 'check the file permissions' });
    return err('internal', `read file: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  try {
    const st = await fh.stat();
    if (st.isFile()) return ok({ fh, size: st.size, mtimeMs: st.mtimeMs });
    await fh.close().catch(() => undefined);
    return err('invalid_argument', `not a regular file: ${path}`);
  } catch (e) {
    await fh.close().catch(() => undefined);
    return err('internal', `read file: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}
