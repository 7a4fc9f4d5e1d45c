// Where a daemon's files live; shared by pilotctl, the SDK and pilot-daemon so they agree on the socket.
// Precedence for the socket: explicit path > PILOT_SOCKET > <home>/pilot.sock; home: explicit > PILOT_HOME > ~/.pilot.
import { resolve } from 'node:path';
import { defaultHome, homePaths, type HomePaths } from '../node/home.js';

export { defaultHome, homePaths, type HomePaths };

export interface SocketLocation {
  socketPath?: string | undefined;
  home?: string | undefined;
}

export function resolveHome(home: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return home !== undefined && home !== '' ? resolve(home) : defaultHome(env);
}

/** The control socket a client should use. An explicit home wins over PILOT_SOCKET (it names another daemon). */
export function resolveSocketPath(loc: SocketLocation = {}, env: NodeJS.ProcessEnv = process.env): string {
  if (loc.socketPath) return resolve(loc.socketPath);
  if (loc.home) return homePaths(resolve(loc.home)).socket;
  if (env.PILOT_SOCKET) return resolve(env.PILOT_SOCKET);
  return homePaths(defaultHome(env)).socket;
}

/**
 * Socket and home of the daemon a client means: the socket as resolveSocketPath, the home (whose published node
 * key the daemon must prove, see client.ts) explicit > PILOT_HOME > ~/.pilot — the same home pilot-daemon uses
 * when given only --socket.
 */
export function resolveDaemonTarget(loc: SocketLocation = {}, env: NodeJS.ProcessEnv = process.env): { socketPath: string; home: string } {
  return { socketPath: resolveSocketPath(loc, env), home: resolveHome(loc.home, env) };
}
