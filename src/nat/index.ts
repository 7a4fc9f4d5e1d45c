// NAT traversal core (issue 4), sans-IO: classification, strategy planning, the per-peer Traversal state
// machine, NAT control messages carried inside the Noise session, and relay framing helpers.
export * from './types.js';
export * from './classify.js';
export * from './plan.js';
export * from './messages.js';
export * from './relay.js';
export * from './traversal.js';
