// Small persisted JSON documents (trust, pending requests, config): atomic replace on write, and a corrupt
// file is moved aside and reported — never silently emptied.
import { readFileSync, renameSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { err, ok, type Result } from '../core/result.js';
import { writeFileSafe } from '../core/safe-file.js';

/** Reads and parses `path`; a missing file gives `fallback`. A corrupt one is renamed `<path>.corrupt-<ms>`. */
export function readJsonFile<T>(path: string, fallback: T, validate: (v: unknown) => v is T, nowMs: number): Result<T> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return ok(fallback);
    return err('internal', `cannot read ${path}: ${(e as Error).message}`, { hint: 'check the file permissions', cause: e });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  if (value === undefined || !validate(value)) {
    const aside = `${path}.corrupt-${nowMs}`;
    try {
      renameSync(path, aside);
    } catch {
      /* keep going: the error below still names the file */
    }
    return err('internal', `state file ${path} is corrupt; it was kept as ${aside}`, {
      hint: `inspect or repair ${aside}; remove it to start that state afresh`,
      detail: { path, kept_as: aside },
    });
  }
  return ok(value);
}

/** Atomically replaces `path` with `value` as JSON (core/safe-file: exclusive no-follow temp file, fsync, rename), mode 0600. */
export function writeJsonFile(path: string, value: unknown): Result<void> {
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  } catch (e) {
    return err('internal', `cannot create ${dirname(path)}: ${(e as Error).message}`, { hint: 'check the permissions of the home directory', cause: e });
  }
  return writeFileSafe(path, JSON.stringify(value, null, 2) + '\n');
}
