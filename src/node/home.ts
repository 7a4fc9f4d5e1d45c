// Everything a daemon keeps lives under one home directory, so several daemons can share a machine
// without sharing an inbox (--home / PILOT_HOME, default ~/.pilot).
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export interface HomePaths {
  home: string;
  identity: string;
  trust: string;
  socket: string;
  pidFile: string;
  logFile: string;
  config: string;
  inbox: string;
  received: string;
  state: string;
}

export function defaultHome(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.PILOT_HOME ?? join(homedir(), '.pilot'));
}

export function homePaths(home: string): HomePaths {
  const h = resolve(home);
  return {
    home: h,
    identity: join(h, 'identity.json'),
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
