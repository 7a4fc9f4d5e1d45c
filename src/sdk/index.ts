// Package entry: `import { PilotClient } from 'pilot-node'`.
import type { Result } from '../core/result.js';
import type { NodeEnv } from '../node/env.js';
import type { LocalNode, NodeOptions } from './local-node.js';
export { PilotClient, type PilotClientOptions, type PingOptions } from './client.js';
export type * from '../node/api.js';
export { ERRORS, PilotException, isErrorCode, pilotError, type ErrorCode, type PilotError } from '../core/errors.js';
export { ok, err, errFrom, type Result } from '../core/result.js';
export { resolveSocketPath, resolveHome, defaultHome } from '../ipc/paths.js';
export { parseAddr, formatAddr, type VirtualAddr } from '../wire/address.js';

// In-process node (no daemon): the daemon core plus the built-in services, as one NodeApi. Loaded on first
// use: an app that only talks to its daemon (PilotClient) does not load the node stack. Measured (issue 18,
// a PilotClient receiving 1 GiB through the daemon): with the stack loaded its heap is ~10 MB instead of ~5,
// and Node 20 then runs ~30 mark-compacts per GB in it (1.1 s/GB of CPU) where the bare client runs none (0.3).
export type { LocalNode, NodeOptions } from './local-node.js';

/** An in-process node (see LocalNode); the same call as before, the module loads on the first one. */
export async function createNode(options?: NodeOptions, env?: NodeEnv): Promise<Result<LocalNode>> {
  const m = await import('./local-node.js');
  return m.createNode(options, env);
}
