// Everything a daemon keeps lives under one home directory, so several daemons can share a machine
// without sharing an inbox (--home / PILOT_HOME, default ~/.pilot). The home holds the secret key, trust and
// the control socket, so it must be ours alone: created 0700, forced to 0700 when merely readable by others,
// and refused (`unsafe_home`) when another user owns it or group/others may write it — anyone who can write
// there can plant a trust file, a symlink for the next write, or a socket pilotctl would talk to.
import { chmodSync, mkdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { err, ok, type Result } from '../core/result.js';

export interface HomePaths {
  home: string;
  identity: string;
  /** The node's Ed25519 public key, published by the daemon so pilotctl/SDK can check who answers the socket. */
  publicKey: string;
  trust: string;
  socket: string;
  pidFile: string;
  logFile: string;
  config: string;
  inbox: string;
  received: string;
  state: string;
}

export const HOME_DIR_MODE = 0o700;

export function defaultHome(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.PILOT_HOME ?? join(homedir(), '.pilot'));
}

export function homePaths(home: string): HomePaths {
  const h = resolve(home);
  return {
    home: h,
    identity: join(h, 'identity.json'),
    publicKey: join(h, 'identity.pub'),
    trust: join(h, 'trust.json'),
    socket: join(h, 'pilot.sock'),
    pidFile: join(h, 'daemon.pid'),
    logFile: join(h, 'daemon.log'),
    config: join(h, 'config.json'),
    inbox: join(h, 'inbox'),
    received: join(h, 'received'),
    state: join(h, 'state.json'),
  };
}

function myUid(): number | null {
  return typeof process.getuid === 'function' ? process.getuid() : null;
}

/**
 * Is `home` a directory that only we control? ok when it is ours and group/others cannot write it; with
 * `fix`, a mode wider than 0700 that is not writable by others is narrowed to 0700. Errors: `unsafe_home`
 * (other owner, group/other-writable, not a directory), `not_found` (missing), `internal`. POSIX only: on
 * Windows it only checks that it is a directory. Does file-system I/O.
 */
export function checkHome(home: string, opts: { fix?: boolean } = {}): Result<void> {
  const h = resolve(home);
  let st;
  try {
    st = statSync(h); // follows a symlinked home (~/.pilot -> /data/pilot): what matters is the directory itself
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return err('not_found', `home ${h} does not exist`, { hint: 'start the daemon once to create it', detail: { home: h } });
    return err('internal', `cannot stat home ${h}: ${(e as Error).message}`, { hint: `check the permissions of ${h}`, cause: e });
  }
  if (!st.isDirectory()) {
    return err('unsafe_home', `home ${h} is not a directory`, { hint: 'pass another --home (or PILOT_HOME)', detail: { home: h } });
  }
  const uid = myUid();
  if (uid === null) return ok();
  const mode = st.mode & 0o777;
  if (st.uid !== uid) {
    return err('unsafe_home', `home ${h} is owned by uid ${st.uid}, not by you (uid ${uid})`, {
      hint: `use a home of your own (--home or PILOT_HOME), or as its owner: chown ${uid} ${h}`,
      detail: { home: h, owner_uid: st.uid, uid, mode },
    });
  }
  if ((mode & 0o022) !== 0) {
    // Someone else may already have planted files: narrowing the mode now would not undo that.
    return err('unsafe_home', `home ${h} is writable by group or others (mode ${mode.toString(8)})`, {
      hint: `check its contents for files you did not create, then: chmod 700 ${h}`,
      detail: { home: h, mode },
    });
  }
  if (mode !== HOME_DIR_MODE && opts.fix) {
    try {
      chmodSync(h, HOME_DIR_MODE);
    } catch (e) {
      return err('internal', `cannot chmod 700 ${h}: ${(e as Error).message}`, { cause: e });
    }
  }
  return ok();
}

/**
 * Create `home` (0700, parents as needed) or check an existing one with `checkHome(home, {fix: true})`.
 * Errors: `unsafe_home`, `internal`. Does file-system I/O.
 */
export function prepareHome(home: string): Result<void> {
  const h = resolve(home);
  try {
    mkdirSync(h, { recursive: true, mode: HOME_DIR_MODE });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
      return err('unsafe_home', `cannot create home ${h}: ${(e as Error).message}`, { hint: 'pass --home with a directory you can write', cause: e });
    }
  }
  return checkHome(h, { fix: true });
}
