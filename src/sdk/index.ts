// Package entry: `import { PilotClient } from 'pilot-node'`.
export { PilotClient, type PilotClientOptions, type PingOptions } from './client.js';
export type * from '../node/api.js';
export { ERRORS, PilotException, isErrorCode, pilotError, type ErrorCode, type PilotError } from '../core/errors.js';
export { ok, err, errFrom, type Result } from '../core/result.js';
export { resolveSocketPath, resolveHome, defaultHome } from '../ipc/paths.js';
export { parseAddr, formatAddr, type VirtualAddr } from '../wire/address.js';

// In-process node (no daemon): the daemon core plus the built-in services, as one NodeApi.
export { createNode, LocalNode, type NodeOptions } from './local-node.js';
