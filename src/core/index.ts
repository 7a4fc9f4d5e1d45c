export * from './errors.js';
export * from './result.js';
export * from './clock.js';
export * from './rng.js';
export * from './logger.js';
