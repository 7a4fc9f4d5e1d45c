// Public surface of src/crypto: identity, Noise IK handshake, transport sessions.
export * from './identity.js';
export * from './aead.js';
export * from './replay-window.js';
export * from './tunnel-session.js';
export * from './session.js';
export * from './noise-ik.js';
export * from './cookie.js';
