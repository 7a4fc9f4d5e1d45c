// NAT traversal, sans-IO — the one implementation the daemon runs (issue 11): classification (classify.ts),
// strategy planning (plan.ts), the path engine that decides every punch, probe and path change for all peers
// (paths.ts), the path control plaintexts (messages.ts) and every constant (timing.ts); relay framing is in
// src/wire/beacon-message.ts. The daemon executes the engine's actions in src/node/paths/ (path-driver.ts, extra-sockets.ts,
// beacon-client.ts); test/unit/nat/traversal.test.ts runs the same engine against modelled NATs.
export * from './types.js';
export * from './classify.js';
export * from './plan.js';
export * from './messages.js';
export * from './timing.js';
export * from './paths.js';
export * from './transport-choice.js';
