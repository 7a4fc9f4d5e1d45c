// Relay framing lives in src/wire/beacon-message.ts (one implementation); re-exported for src/nat/index.ts.
export {
  RELAY_HEADER_BYTES as RELAY_OVERHEAD_BYTES,
  unwrapRelayDeliver,
  wrapRelay,
} from '../wire/beacon-message.js';
