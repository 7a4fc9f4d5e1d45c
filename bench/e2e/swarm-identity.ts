// Deterministic identities of the RSS swarm's peers, shared by swarm-worker.ts and the orchestrator (which
// writes them into the daemon's trust.json before starting it).
import { createHash } from 'node:crypto';
import { identityFromSeed, type Identity } from '../../src/crypto/index.js';

export const SWARM_NODE_ID_BASE = 3_000_000;

export function swarmIdentity(i: number): Identity {
  return identityFromSeed(new Uint8Array(createHash('sha256').update(`pilot-bench-swarm-${i}`).digest()));
}
